"""Reports: one self-contained HTML page (figures embedded) plus a markdown summary.

A run directory holds ``config.json``, ``metrics.jsonl`` (one JSON object per logged step),
``eval.json`` (nested metrics from ``evaluate``), ``analysis.json`` and ``figures/*.png``.
``write_report`` puts several runs side by side: config differences, training curves, every
numeric metric, every figure.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clipspace.errors import ClipspaceError
from clipspace.io import atomic_write_text
from clipspace.train.logger import read_metrics
from clipspace.tree import flatten


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ClipspaceError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from None


class RunSummary:
    """Everything a report shows about one run directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        if not self.dir.is_dir():
            raise ClipspaceError(f"run directory not found: {self.dir}")
        self.name = self.dir.name
        cfg_path = self.dir / "config.json"
        self.config = flatten(_read_json(cfg_path)) if cfg_path.exists() else {}
        self.metrics = read_metrics(self.dir)
        self.results: dict[str, Any] = {}
        for fname in ("eval.json", "analysis.json"):
            path = self.dir / fname
            if path.exists():
                self.results.update(flatten(_read_json(path)))
        self.figures = sorted((self.dir / "figures").glob("*.png"))

    def numeric_results(self) -> dict[str, float]:
        return {
            k: float(v)
            for k, v in self.results.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }


VERDICTS = ("agrees", "partly", "disagrees", "not comparable")


@dataclass
class Table:
    """A small table of a report section: ``header`` and ``rows`` of already formatted cells."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Section:
    """One experiment's part of a report: what the paper claims, what this run shows, whether
    they agree (``VERDICTS``), and the tables and figures (PNG paths) that show it.
    ``headline``: the few numbers the paper argues about first (label -> value)."""

    title: str
    paper: str
    claim: str
    finding: str
    verdict: str
    tables: list[Table] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    headline: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"Section.verdict must be one of {VERDICTS}, got {self.verdict!r}")
        self.tables = [t if isinstance(t, Table) else Table(**t) for t in self.tables]
        self.figures = [str(f) for f in self.figures]

    def save(self, path: str | Path) -> Path:
        """Write the section as JSON (atomically); ``Section.load`` reads it back."""
        atomic_write_text(Path(path), json.dumps(asdict(self), indent=1) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Section:
        data = _read_json(Path(path))
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise ClipspaceError(f"{path}: not a report section: {err}") from None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)


def metric_table(runs: Sequence[RunSummary]) -> tuple[list[str], list[list[str]]]:
    """Rows = metric names (union over runs), columns = runs."""
    keys: list[str] = []
    for run in runs:
        for key in run.numeric_results():
            if key not in keys:
                keys.append(key)
    rows = [[key] + [_fmt(run.numeric_results().get(key, "-")) for run in runs] for key in keys]
    return ["metric", *[r.name for r in runs]], rows


def config_table(runs: Sequence[RunSummary]) -> tuple[list[str], list[list[str]]]:
    """Config keys whose values differ between runs (all keys for a single run)."""
    keys = sorted({k for r in runs for k in r.config})
    rows = []
    for key in keys:
        values = [r.config.get(key, "-") for r in runs]
        if len(runs) == 1 or len({json.dumps(v, sort_keys=True) for v in values}) > 1:
            rows.append([key, *[_fmt(v) for v in values]])
    return ["config", *[r.name for r in runs]], rows


def curve_figure(runs: Sequence[RunSummary]) -> bytes | None:
    """PNG of every logged loss term and scalar against step, one panel per key."""
    keys: list[str] = []
    for run in runs:
        for row in run.metrics:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and key not in keys:
                    keys.append(key)
    keys = [k for k in keys if k.startswith("loss") or k in ("logit_scale", "curv", "lr",
                                                                "alpha_img", "alpha_txt")]
    if not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for run in runs:
            pts = [(r["step"], r[key]) for r in run.metrics if key in r and "step" in r]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, label=run.name, lw=1.2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">' \
        f"<figcaption>{html.escape(alt)}</figcaption></figure>"


def _render_section(sec: Section) -> tuple[str, str]:
    """(HTML, markdown) of one experiment section: claim, finding, verdict, tables, figures."""
    parts = [f"<section><h2>{html.escape(sec.title)}</h2>",
             f"<p><b>{html.escape(sec.paper)} claims:</b> {html.escape(sec.claim)}</p>",
             f"<p><b>This run ({html.escape(sec.verdict)}):</b> {html.escape(sec.finding)}</p>"]
    md = [f"## {sec.title}", "", f"**{sec.paper} claims:** {sec.claim}", "",
          f"**This run ({sec.verdict}):** {sec.finding}", ""]
    for table in sec.tables:
        parts.append(_html_table(table.header, table.rows))
        md += [table.caption, "", _md_table(table.header, table.rows), ""]
    for fig in sec.figures:
        parts.append(_img(Path(fig).read_bytes(), Path(fig).stem))
        md.append(f"![{Path(fig).stem}]({Path(fig).resolve()})")
    parts.append("</section>")
    return "".join(parts), "\n".join(md)


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
figure{display:inline-block;margin:8px}img{max-width:560px}
figcaption{font-size:12px;color:#555}"""


def write_report(
    run_dirs: Sequence[str | Path], out_dir: str | Path, title: str = "clipspace report",
    extra_figures: Sequence[Path] = (),
    sections: Sequence[Section] = (),
) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` into ``out_dir``; ``sections``
    (one per experiment) come first."""
    if not run_dirs:
        raise ClipspaceError("report needs at least one run directory")
    runs = [RunSummary(d) for d in run_dirs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m_header, m_rows = metric_table(runs)
    c_header, c_rows = config_table(runs)
    curves = curve_figure(runs)

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    md = [f"# {title}", ""]
    for sec in sections:
        html_part, md_part = _render_section(sec)
        parts.append(html_part)
        md += [md_part, ""]
    parts.append("<h2>Metrics</h2>" + _html_table(m_header, m_rows))
    md += ["## Metrics", "", _md_table(m_header, m_rows), ""]
    parts.append("<h2>Config</h2>" + _html_table(c_header, c_rows))
    md += ["## Config", "", _md_table(c_header, c_rows), ""]
    parts.append("<h2>Figures</h2>")
    md += ["## Figures", ""]
    if curves is not None:
        parts.append(_img(curves, "training curves"))
        (out / "training_curves.png").write_bytes(curves)
        md.append("![training curves](training_curves.png)")
    for fig in extra_figures:
        parts.append(_img(Path(fig).read_bytes(), Path(fig).stem))
        md.append(f"![{Path(fig).stem}]({Path(fig).resolve()})")
    for run in runs:
        for fig in run.figures:
            parts.append(_img(fig.read_bytes(), f"{run.name}: {fig.stem}"))
            md.append(f"![{run.name}: {fig.stem}]({fig.resolve()})")
    parts.append("</body></html>")
    html_path, md_path = out / "report.html", out / "report.md"
    atomic_write_text(html_path, "\n".join(parts))
    atomic_write_text(md_path, "\n".join(md) + "\n")
    return html_path, md_path
