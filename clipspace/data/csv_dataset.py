"""Image-caption pairs from a CSV/TSV file in open_clip's layout.

One header row naming the columns, then one row per pair; ``img_key`` holds the image path
(absolute, or relative to ``image_root``, or to the CSV's directory when ``image_root`` is empty)
and ``caption_key`` the caption. Other columns are ignored. The whole file is read and validated
when the dataset is built, so a malformed file fails before training starts; a file that is
not UTF-8 is a DataError naming the line of its first bad byte.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from clipspace.config.textfile import check_regular_file, read_utf8
from clipspace.data.bad_images import BadImageCounter, first_readable, read_counted
from clipspace.data.transforms import image_transform
from clipspace.errors import DataError

Transform = Callable[[Any], torch.Tensor]


def _default_transform() -> Transform:
    return image_transform(224)


def csv_reader(path: Path, sep: str, what: str = "CSV file") -> Any:
    """A ``csv.reader`` over the UTF-8 text of ``path`` (``read_utf8``: a file that is not UTF-8
    is a DataError naming the line of the first bad byte)."""
    text = read_utf8(path, what)
    return csv.reader(io.StringIO(text, newline=""), delimiter=sep)


def read_header(reader: Any, path: Path, columns: Sequence[str], hint: str = "") -> list[str]:
    """The stripped header row of a CSV reader; DataError on an empty file or missing
    ``columns`` (``hint`` is added to that message)."""
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(f"{path}: empty file (expected a header row)") from None
    missing = [k for k in columns if k not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; columns found: {header}"
                        + (f" ({hint})" if hint else ""))
    return header


def _pairs(reader: Any, path: Path, header: list[str], keys: tuple[str, str], sep: str
           ) -> tuple[list[str], list[str]]:
    """(image paths, captions) of the data rows; DataError naming the line of a bad row."""
    (img_key, caption_key), n_cols = keys, len(header)
    i_img, i_cap = header.index(img_key), header.index(caption_key)
    images: list[str] = []
    captions: list[str] = []
    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != n_cols:
            raise DataError(f"{path}, line {line}: expected {n_cols} fields separated by "
                            f"{sep!r} (columns {header}), found {len(row)}")
        img, cap = row[i_img].strip(), row[i_cap].strip()
        if not img:
            raise DataError(f"{path}, line {line}: empty {img_key!r} (image path)")
        if not cap:
            raise DataError(f"{path}, line {line}: empty {caption_key!r} (caption)")
        images.append(img)
        captions.append(cap)
    return images, captions


def read_csv_pairs(
    path: str | Path, img_key: str = "filepath", caption_key: str = "title", sep: str = "\t"
) -> tuple[list[str], list[str]]:
    """(image paths, captions) from the file; DataError names file, line and columns found."""
    path = Path(path)
    check_regular_file(path, "CSV file")
    if len(sep) != 1:
        raise DataError(f"{path}: separator must be one character, got {sep!r}")
    reader = csv_reader(path, sep)
    header = read_header(reader, path, (img_key, caption_key), f"separator {sep!r}; set "
                         "data.csv_img_key / data.csv_caption_key / data.csv_sep")
    try:
        images, captions = _pairs(reader, path, header, (img_key, caption_key), sep)
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: malformed row ({exc})") from None
    if not images:
        raise DataError(f"{path}: no rows after the header")
    return images, captions


class CsvDataset(Dataset):
    """Items ``{"image": (3,H,W) float, "text": caption, "index": i}``.

    A corrupt or missing image (or a path that is not a regular file) is skipped: the item of
    the next readable row is returned instead (``"index"`` is that row's), and the row asked for
    is counted once in ``self.bad_images`` (:class:`BadImageCounter`, shared across DataLoader
    workers; see ``bad_images.py``).
    """

    def __init__(
        self,
        path: str | Path,
        img_key: str = "filepath",
        caption_key: str = "title",
        sep: str = "\t",
        image_root: str | Path = "",
        transform: Transform | None = None,
        max_bad_fraction: float = 0.01,
    ) -> None:
        self.path = Path(path)
        files, self.captions = read_csv_pairs(self.path, img_key, caption_key, sep)
        root = Path(image_root) if str(image_root) else self.path.parent
        self.image_paths = [Path(f) if Path(f).is_absolute() else root / f for f in files]
        self.transform = transform if transform is not None else _default_transform()
        self.bad_images = BadImageCounter(max_bad_fraction, total=len(files), name=str(self.path))

    def __len__(self) -> int:
        return len(self.captions)

    def load(self, i: int, count: bool = True) -> torch.Tensor | None:
        """The transformed image of row ``i``, or None if it cannot be read (counted in
        ``self.bad_images`` when ``count``: see ``bad_images.first_readable``)."""
        return read_counted(self.image_paths[i], self.transform,
                            self.bad_images if count else None)

    def __getitem__(self, index: int) -> dict[str, Any]:
        i, image = first_readable(index, len(self), self.load, self.path)
        return {"image": image, "text": self.captions[i], "index": i}
