"""An experiment's part of a report (``Section``: claim, finding, verdict, tables, figures,
headline numbers) and its small tables (``Table``), saved as ``section.json``."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clipspace.errors import ClipspaceError
from clipspace.io import atomic_write_text

VERDICTS = ("agrees", "partly", "disagrees", "not comparable")


def read_json(path: Path) -> Any:
    """Parsed JSON of ``path``; a ClipspaceError naming the file and line when it is invalid."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ClipspaceError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ClipspaceError(f"{path}: unreadable ({err})") from None


@dataclass
class Table:
    """A small table of a report section: ``header`` and ``rows`` of already formatted cells."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""

    def text(self) -> str:
        """The table as right-aligned plain-text columns (for the terminal)."""
        rows = [self.header, *self.rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.header))]
        return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))
                         for r in rows)


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
        """Write the section as JSON (atomically; a non-finite headline value becomes null);
        ``Section.load`` reads it back."""
        data = asdict(self)
        data["headline"] = {k: v if isinstance(v, (int, float)) and math.isfinite(v) else None
                            for k, v in self.headline.items()}
        atomic_write_text(Path(path), json.dumps(data, indent=1, allow_nan=False) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Section:
        """Read ``section.json``; relative figure paths are taken relative to its folder."""
        path = Path(path)
        data = read_json(path)
        try:
            sec = cls(**data)
        except (TypeError, ValueError) as err:
            raise ClipspaceError(f"{path}: not a report section: {err}") from None
        sec.figures = [str(f if Path(f).is_absolute() else path.parent / f)
                       for f in sec.figures]
        return sec


__all__ = ["VERDICTS", "Section", "Table", "read_json"]
