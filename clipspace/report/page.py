"""One report page written twice: self-contained HTML (figures embedded as base64 PNG) and
markdown (figures as PNG files beside it). Wide tables scroll inside their own box and images
never exceed the page width, so the page itself never scrolls sideways."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from clipspace.errors import ClipspaceError
from clipspace.io import atomic_write_bytes
from clipspace.report.section import Section, Table

STYLE = """body{font-family:sans-serif;margin:0 auto;padding:1em 2em;max-width:1200px;
line-height:1.4;overflow-wrap:anywhere}
nav ol{columns:2;font-size:14px}
.scroll{overflow-x:auto;max-width:100%;margin:1em 0}
table{border-collapse:collapse;font-size:13px}
caption{caption-side:top;text-align:left;font-size:12px;color:#555;padding:2px 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}
td:first-child,th:first-child{text-align:left}
figure{margin:1em 0;max-width:100%}img{max-width:100%;height:auto}
figcaption{font-size:12px;color:#555}
.verdict{display:inline-block;padding:2px 8px;border-radius:4px;font-weight:bold}
.verdict-agrees{background:#d4f4d4}.verdict-partly{background:#fff1c2}
.verdict-disagrees{background:#f9d0d0}.verdict-not-comparable{background:#e4e4e4}
.note{color:#8a5a00}"""


def slug(text: str) -> str:
    """An HTML id / file stem: lowercase words joined by '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


class Page:
    """Accumulates the HTML and the markdown of a report in reading order; ``figure`` writes
    each PNG once to ``out/figures`` for the markdown."""

    def __init__(self, title: str, out: Path) -> None:
        self.title, self.out = title, out
        self.parts: list[str] = []
        self.md: list[str] = [f"# {title}", ""]
        self.toc: list[tuple[str, str]] = []

    def heading(self, text: str, anchor: str = "") -> None:
        anchor = anchor or slug(text)
        self.toc.append((anchor, text))
        self.parts.append(f'<h2 id="{anchor}">{html.escape(text)}</h2>')
        self.md += [f"## {text}", ""]

    def text(self, text: str, css: str = "") -> None:
        cls = f' class="{css}"' if css else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")
        self.md += [text, ""]

    def table(self, table: Table, css_id: str = "") -> None:
        ident = f' id="{css_id}"' if css_id else ""
        cap = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in table.rows)
        self.parts.append(f'<div class="scroll"><table{ident}>{cap}<thead><tr>{head}</tr>'
                          f"</thead><tbody>{body}</tbody></table></div>")
        lines = ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
                  for row in table.rows]
        self.md += ([table.caption, ""] if table.caption else []) + lines + [""]

    def figure(self, fig_id: str, caption: str, png: bytes) -> None:
        data = base64.b64encode(png).decode("ascii")
        self.parts.append(f'<figure id="fig-{fig_id}"><img alt="{html.escape(caption)}" '
                          f'src="data:image/png;base64,{data}"><figcaption>'
                          f"{html.escape(caption)}</figcaption></figure>")
        path = self.out / "figures" / f"{fig_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, png)
        alt = caption.replace("[", "\\[").replace("]", "\\]")
        self.md += [f"![{alt}](figures/{fig_id}.png)", ""]

    def section(self, sec: Section) -> None:
        """An experiment's section: claim, this run's finding, the verdict, tables, figures."""
        anchor = "section-" + slug(sec.title)
        self.heading(sec.title, anchor)
        self.parts.append(f"<p><b>{html.escape(sec.paper)} claims:</b> "
                          f"{html.escape(sec.claim)}</p><p><b>This run:</b> "
                          f"{html.escape(sec.finding)}</p><p>Verdict: <span class=\"verdict "
                          f"verdict-{slug(sec.verdict)}\">{html.escape(sec.verdict)}</span></p>")
        self.md += [f"**{sec.paper} claims:** {sec.claim}", "",
                    f"**This run:** {sec.finding}", "", f"**Verdict: {sec.verdict}**", ""]
        for table in sec.tables:
            self.table(table)
        for i, fig in enumerate(sec.figures):
            if not Path(fig).is_file():
                raise ClipspaceError(f"report section {sec.title!r}: figure not found: {fig}")
            self.figure(f"{anchor}-{i}-{slug(Path(fig).stem)}", Path(fig).stem,
                        Path(fig).read_bytes())

    def html(self) -> str:
        toc = "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>' for a, t in self.toc)
        return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta "
                f"name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>"
                f"{html.escape(self.title)}</title><style>{STYLE}</style></head><body><h1>"
                f"{html.escape(self.title)}</h1><nav><ol>{toc}</ol></nav>\n"
                + "\n".join(self.parts) + "\n</body></html>\n")

    def markdown(self) -> str:
        return "\n".join(self.md) + "\n"


__all__ = ["STYLE", "Page", "slug"]
