"""Caption text files: one caption per non-empty line, or one column of a CSV/TSV file."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from clipspace.config.textfile import read_utf8
from clipspace.errors import DataError


def read_caption_lines(path: str | Path, column: str = "", sep: str = "") -> list[str]:
    """Captions of one file: a CSV/TSV ``column`` (``.csv``/``.tsv``; ``sep`` defaults to ','
    and tab) or one caption per non-empty line. Errors name the file and line (a file that is
    not UTF-8: the line of its first bad byte)."""
    src = Path(path)
    fh = io.StringIO(read_utf8(src, "input file"), newline="")
    if src.suffix.lower() not in (".csv", ".tsv"):
        return [line.rstrip("\r\n") for line in fh if line.strip()]
    delim = sep or ("\t" if src.suffix.lower() == ".tsv" else ",")
    reader = csv.reader(fh, delimiter=delim)
    header = next(reader, None) or []
    if not column or column not in header:
        raise DataError(f"{src}: caption column {column!r} not found; columns {header}")
    j = header.index(column)
    out = []
    for line, row in enumerate(reader, start=2):
        if len(row) <= j:
            raise DataError(f"{src}, line {line}: no field {column!r}; columns {header}")
        out.append(row[j])
    return out


__all__ = ["read_caption_lines"]
