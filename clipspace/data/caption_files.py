"""Caption text files: one caption per non-empty line, or one column of a CSV/TSV file."""

from __future__ import annotations

import csv
from pathlib import Path

from clipspace.errors import DataError


def read_caption_lines(path: str | Path, column: str = "", sep: str = "") -> list[str]:
    """Captions of one file: a CSV/TSV ``column`` (``.csv``/``.tsv``; ``sep`` defaults to ','
    and tab) or one caption per non-empty line. Errors name the file and line."""
    src = Path(path)
    if not src.is_file():
        raise DataError(f"{src}: input file not found")
    table = src.suffix.lower() in (".csv", ".tsv")
    with open(src, newline="", encoding="utf-8") as fh:
        if not table:
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
