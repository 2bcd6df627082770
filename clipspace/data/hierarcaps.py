"""HierarCaps files (Alper & Averbuch-Elor, ECCV 2024; docs/reference.md section 3).

* test CSV: columns ``id, captions, image_url``; ``captions`` = "l1 => l2 => l3 => l4", generic to
  specific (l4 is the original MS-COCO caption). Images live in a local directory, matched by file
  name = the last part of ``image_url`` (e.g. ``COCO_val2014_000000301718.jpg``).
* train CSV: columns ``positive, negative``, each a 4-level chain in the same form; negative level k
  is a sibling of positive level k.

Files are comma-separated with standard CSV quoting (captions may contain commas).
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from clipspace.data.bad_images import BadImageCounter, first_readable, read_counted
from clipspace.data.chains import Chain
from clipspace.data.csv_dataset import csv_reader, read_header
from clipspace.data.transforms import image_transform
from clipspace.errors import DataError

SEPARATOR = " => "
LEVELS = 4
TEST_COLUMNS = ("id", "captions", "image_url")
TRAIN_COLUMNS = ("positive", "negative")


@dataclass
class HierarCapsRow:
    """One test row; ``image_path`` is None when the image is not in the image directory."""

    id: str
    captions: list[str]
    image_url: str
    image_path: Path | None
    line: int


def split_chain(text: str, where: str, levels: int = LEVELS) -> list[str]:
    """"a => b => c => d" -> ["a", "b", "c", "d"]; DataError (naming ``where``) otherwise."""
    parts = [p.strip() for p in text.split("=>")]
    if len(parts) != levels:
        raise DataError(
            f"{where}: expected a chain of {levels} captions joined by {SEPARATOR.strip()!r}, "
            f"found {len(parts)} in {text[:120]!r}"
        )
    if any(not p for p in parts):
        raise DataError(f"{where}: empty caption level in chain {text[:120]!r}")
    return parts


def _rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row dict) for each data row; DataError on a file that is not UTF-8 (its
    line), missing columns or bad rows."""
    reader = csv_reader(path, ",", "HierarCaps CSV")
    header = read_header(reader, path, columns)
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}, line {reader.line_num}: expected {len(header)} fields "
                    f"(columns {header}), found {len(row)}"
                )
            yield reader.line_num, dict(zip(header, row, strict=True))
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: malformed row ({exc})") from None


def image_name(url: str) -> str:
    """File name of an image URL or path: the part after the last '/'."""
    return url.strip().rstrip("/").rsplit("/", 1)[-1]


def read_hierarcaps_test(
    csv_path: str | Path, image_dir: str | Path | None = None
) -> list[HierarCapsRow]:
    """Rows of the test CSV, each with its 4 captions and local image path (None if missing).

    ``image_dir`` defaults to ``<csv dir>/images``. Missing images are reported with a warning
    giving their count and a few names; the rows are kept (``image_path=None``).
    """
    path = Path(csv_path)
    folder = Path(image_dir) if image_dir is not None else path.parent / "images"
    available = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    rows: list[HierarCapsRow] = []
    for line, rec in _rows(path, TEST_COLUMNS):
        where = f"{path}, line {line}"
        url = rec["image_url"].strip()
        if not url:
            raise DataError(f"{where}: empty image_url")
        caps = split_chain(rec["captions"], where)
        name = image_name(url)
        rows.append(
            HierarCapsRow(
                id=rec["id"].strip(),
                captions=caps,
                image_url=url,
                image_path=folder / name if name in available else None,
                line=line,
            )
        )
    if not rows:
        raise DataError(f"{path}: no rows after the header")
    missing = [r for r in rows if r.image_path is None]
    if missing:
        examples = ", ".join(image_name(r.image_url) for r in missing[:3])
        warnings.warn(
            f"{path}: {len(missing)} of {len(rows)} images not found in {folder} (e.g. {examples})",
            stacklevel=2,
        )
    return rows


def read_hierarcaps_train(csv_path: str | Path) -> list[Chain]:
    """Chains of the train CSV: ``Chain(positive (4), negative (4), index)``.

    ``index`` is the 0-based data-row number (the train file has no images).
    """
    path = Path(csv_path)
    chains: list[Chain] = []
    for line, rec in _rows(path, TRAIN_COLUMNS):
        where = f"{path}, line {line}"
        pos = split_chain(rec["positive"], f"{where}, column 'positive'")
        neg = split_chain(rec["negative"], f"{where}, column 'negative'")
        chains.append(Chain(positive=pos, negative=neg, index=len(chains)))
    if not chains:
        raise DataError(f"{path}: no rows after the header")
    return chains


class HierarCapsImages(Dataset):
    """Test images with their chains: ``{"image", "text" (most specific caption), "index",
    "captions" (the 4 levels, generic -> specific)}``.

    Rows whose image is missing from ``image_dir`` are dropped at construction (listed in
    ``self.missing``); if they exceed ``max_bad_fraction`` of the rows a DataError names them.
    A corrupt image is skipped at load time (the next row is returned) and the row asked for is
    counted once in ``self.bad_images``. ``index`` is the position in ``self.rows`` (the kept
    rows). A CSV that is not UTF-8 is a DataError naming the line of its first bad byte.
    """

    def __init__(
        self,
        csv_path: str | Path,
        image_dir: str | Path | None = None,
        transform: Callable[[Any], torch.Tensor] | None = None,
        max_bad_fraction: float = 0.01,
    ) -> None:
        self.path = Path(csv_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            all_rows = read_hierarcaps_test(self.path, image_dir)
        self.rows = [r for r in all_rows if r.image_path is not None]
        self.missing = [r for r in all_rows if r.image_path is None]
        if len(self.missing) > max_bad_fraction * len(all_rows) or not self.rows:
            names = ", ".join(image_name(r.image_url) for r in self.missing[:5])
            folder = image_dir if image_dir is not None else self.path.parent / "images"
            raise DataError(
                f"{self.path}: {len(self.missing)} of {len(all_rows)} images not found in "
                f"{folder} (limit data.max_bad_fraction={max_bad_fraction}); e.g. {names}"
            )
        if self.missing:
            warnings.warn(
                f"{self.path}: skipping {len(self.missing)} rows whose image is missing",
                stacklevel=2,
            )
        if transform is None:
            transform = image_transform(224)
        self.transform = transform
        self.bad_images = BadImageCounter(
            max_bad_fraction, total=len(self.rows), name=str(self.path)
        )

    def __len__(self) -> int:
        return len(self.rows)

    def chains(self) -> list[list[str]]:
        """The 4-level caption chain of every kept row, in dataset order."""
        return [r.captions for r in self.rows]

    def load(self, i: int, count: bool = True) -> Any | None:
        """Transformed image of row ``i``, or None when it is corrupt or missing (counted when
        ``count``: see ``bad_images.first_readable``)."""
        return read_counted(self.rows[i].image_path, self.transform,  # type: ignore[arg-type]
                            self.bad_images if count else None)

    def __getitem__(self, index: int) -> dict[str, Any]:
        i, image = first_readable(index, len(self), self.load, self.path)
        row = self.rows[i]
        return {"image": image, "text": row.captions[-1], "index": i,
                "captions": list(row.captions)}
