"""Evaluation images with one or more captions each (COCO / Flickr30k style retrieval data).

Three readers build a :class:`CaptionedImages`; each reads and checks its whole input up front,
so bad data fails before any embedding:

* ``read_csv_groups``: a CSV/TSV in the training layout (``data.csv_img_key`` /
  ``csv_caption_key`` / ``csv_sep``, defaults ``filepath``, ``title``, tab; see
  ``csv_dataset.py``). Rows that share an image path are one image with several captions, in row
  order. ``pick_csv_layout`` tries several (image key, caption key, separator) layouts on the
  header, so a comma-separated ``.csv`` file with the default columns is read too.
* ``read_coco_captions``: a COCO captions JSON (``"images"``: ``id``, ``file_name``;
  ``"annotations"``: ``image_id``, ``caption``); images without a caption are left out.
* ``read_wds_groups``: WebDataset shards (``wds.py``), read once in shard order. A sample's
  captions come from ``<key>.txt`` (one caption) or ``<key>.json`` (``"captions"``: a list, or
  ``"caption"`` / ``"text"``, or a bare string or list); samples whose image bytes are identical
  are one image.

Items are ``{"image": (3,H,W), "text": first caption, "texts": all captions, "index": i}``.
A problem (missing column, missing image file, empty or non-UTF-8 file, bad JSON, a shard sample
without image or caption, an undecodable image at load time) is a ``DataError`` naming the file
and the line, key or sample.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tarfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch.utils.data import Dataset

from clipspace.config.textfile import read_utf8
from clipspace.data.bad_images import IMAGE_ERRORS, read_image
from clipspace.data.build import import_wds
from clipspace.data.csv_dataset import read_csv_pairs
from clipspace.data.transforms import image_transform
from clipspace.errors import DataError

Transform = Callable[[Any], torch.Tensor]
#: (image column, caption column, separator) of the training CSV layout's defaults
DEFAULT_CSV_LAYOUT: tuple[str, str, str] = ("filepath", "title", "\t")


@dataclass
class ImageCaptions:
    """One image: its file (or encoded bytes), a name for messages, and its captions."""

    source: Path | bytes
    name: str
    captions: list[str]
    labels: dict[str, int] = field(default_factory=dict)


class CaptionedImages(Dataset):
    """Map-style dataset of images with several captions each (items: see the module doc)."""

    def __init__(self, images: Sequence[ImageCaptions], transform: Transform | None = None,
                 name: str = "") -> None:
        if not images:
            raise DataError(f"{name}: no captioned images")
        if transform is None:
            transform = image_transform(224)
        self.images = list(images)
        self.transform = transform
        self.name = name

    def __len__(self) -> int:
        return len(self.images)

    def captions(self) -> list[list[str]]:
        """Every image's captions, in dataset order."""
        return [list(im.captions) for im in self.images]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.images[index]
        try:
            image = read_image(item.source)
        except IMAGE_ERRORS as exc:
            raise DataError(f"{item.name}: cannot read the image "
                            f"({type(exc).__name__}: {exc})") from None
        return {"image": self.transform(image), "text": item.captions[0],
                "texts": list(item.captions), "index": int(index), **item.labels}


def _has_columns(header_line: str, sep: str, keys: Sequence[str]) -> bool:
    cols = [c.strip() for c in next(csv.reader([header_line], delimiter=sep), [])]
    return all(k in cols for k in keys)


def pick_csv_layout(path: Path, header_line: str,
                    layouts: Sequence[tuple[str, str, str]]) -> tuple[str, str, str]:
    """The first (img_key, caption_key, sep) whose columns are in the header; each layout is also
    tried with ',' for a ``.csv`` file. None fits: the first (its reader names what is missing)."""
    for img_key, cap_key, sep in layouts:
        seps = [sep, ","] if path.suffix.lower() == ".csv" and sep != "," else [sep]
        for s in seps:
            if _has_columns(header_line, s, (img_key, cap_key)):
                return img_key, cap_key, s
    return layouts[0]


def _csv_line(path: Path, sep: str, column: str, value: str) -> int:
    """Line number of the first data row whose ``column`` is ``value`` (0 if none)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=sep)
        header = [h.strip() for h in next(reader)]
        col = header.index(column)
        for row in reader:
            if len(row) > col and row[col].strip() == value:
                return reader.line_num
    return 0


def group_captions(keys: Sequence[str], captions: Sequence[str]) -> dict[str, list[str]]:
    """``{key: [captions in order]}`` in first-occurrence order of the keys."""
    groups: dict[str, list[str]] = {}
    for key, cap in zip(keys, captions, strict=True):
        groups.setdefault(key, []).append(cap)
    return groups


def read_label_columns(path: Path, sep: str, img_key: str, columns: Sequence[str]
                       ) -> dict[str, dict[str, int]]:
    """``{image path as written: {column: label}}`` for label ``columns`` of a CSV (the first row
    of an image decides), each column's values re-indexed 0..K-1 in sorted order (object and
    attribute names of the MIT-States / UT-Zappos setting)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter=sep)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(f"{path}: label column(s) {missing} not found; columns {header}")
        raw: dict[str, dict[str, str]] = {}
        for row in reader:
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            raw.setdefault(row[img_key], {c: row[c] for c in columns})
    ids = {c: {v: i for i, v in enumerate(sorted({r[c] for r in raw.values()}))}
           for c in columns}
    return {f: {c: ids[c][vals[c]] for c in columns} for f, vals in raw.items()}


def read_csv_groups(
    path: str | Path, layouts: Sequence[tuple[str, str, str]] = (DEFAULT_CSV_LAYOUT,),
    image_root: str | Path = "", label_columns: Sequence[str] = (),
) -> list[ImageCaptions]:
    """One ``ImageCaptions`` per distinct image path of the CSV (``pick_csv_layout`` chooses
    the columns); paths are relative to ``image_root``, else to the CSV's folder. With
    ``label_columns``, each image carries those columns as integer labels."""
    path = Path(path)
    text = read_utf8(path, "CSV file")
    img_key, cap_key, sep = pick_csv_layout(path, text.partition("\n")[0], layouts)
    files, caps = read_csv_pairs(path, img_key, cap_key, sep)
    root = Path(image_root) if str(image_root) else path.parent
    resolved = [os.path.normpath(f if Path(f).is_absolute() else root / f) for f in files]
    first_file = dict(zip(reversed(resolved), reversed(files), strict=True))
    groups = group_captions(resolved, caps)
    missing = [f for f in groups if not Path(f).is_file()]
    if missing:
        line = _csv_line(path, sep, img_key, first_file[missing[0]])
        raise DataError(f"{path}, line {line}: image file {missing[0]} not found (column "
                        f"{img_key!r}, relative to {root}); {len(missing)} of {len(groups)} "
                        "images are missing")
    labels = read_label_columns(path, sep, img_key, label_columns) if label_columns else {}
    return [ImageCaptions(Path(f), f, c, labels.get(first_file[f], {}))
            for f, c in groups.items()]


def _load_json(path: Path) -> Any:
    text = read_utf8(path, "COCO annotations file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}, column {exc.colno}: invalid JSON "
                        f"({exc.msg})") from None


def _coco_list(obj: Any, path: Path, key: str, fields: tuple[str, str]) -> list[dict]:
    """``obj[key]``: a list of objects that each have ``fields``; DataError naming the key."""
    if not isinstance(obj, dict) or not isinstance(obj.get(key), list):
        raise DataError(f"{path}: no {key!r} list (a COCO captions file has 'images' with "
                        "id / file_name and 'annotations' with image_id / caption)")
    for i, rec in enumerate(obj[key]):
        for f in fields:
            if not isinstance(rec, dict) or f not in rec:
                raise DataError(f"{path}: {key}[{i}] has no {f!r}")
    return obj[key]


def _coco_files(path: Path, obj: Any) -> dict[Any, str]:
    """``{image id: file_name}`` in the order of ``"images"``."""
    files: dict[Any, str] = {}
    for i, rec in enumerate(_coco_list(obj, path, "images", ("id", "file_name"))):
        key, name = rec["id"], rec["file_name"]
        if not isinstance(key, (int, str)) or isinstance(key, bool) or key in files:
            raise DataError(f"{path}: images[{i}].id {key!r} is not a new integer or string")
        if not isinstance(name, str) or not name.strip():
            raise DataError(f"{path}: images[{i}].file_name {name!r} is not a file name")
        files[key] = name.strip()
    return files


def _coco_texts(path: Path, obj: Any, files: dict[Any, str]) -> dict[Any, list[str]]:
    """``{image id: [captions in annotation order]}``."""
    texts: dict[Any, list[str]] = {}
    for j, rec in enumerate(_coco_list(obj, path, "annotations", ("image_id", "caption"))):
        key, cap = rec["image_id"], rec["caption"]
        if not isinstance(key, (int, str)) or isinstance(key, bool) or key not in files:
            raise DataError(f"{path}: annotations[{j}].image_id {key!r} is not an id in 'images'")
        if not isinstance(cap, str) or not cap.strip():
            raise DataError(f"{path}: annotations[{j}].caption is empty or not a string")
        texts.setdefault(key, []).append(cap.strip())
    return texts


def read_coco_captions(path: str | Path, image_dir: str | Path | None = None
                       ) -> list[ImageCaptions]:
    """One ``ImageCaptions`` per captioned image of a COCO captions file, in ``"images"``
    order; ``file_name`` is relative to ``image_dir`` (default: the JSON's folder)."""
    path = Path(path)
    obj = _load_json(path)
    files = _coco_files(path, obj)
    texts = _coco_texts(path, obj, files)
    folder = Path(image_dir) if image_dir else path.parent
    if len(texts) < len(files):
        warnings.warn(f"{path}: {len(files) - len(texts)} of {len(files)} images have no "
                      "caption and are left out", stacklevel=2)
    out = []
    for i, (key, name) in enumerate(files.items()):
        if key not in texts:
            continue
        file = folder / name
        if not file.is_file():
            raise DataError(f"{path}: images[{i}].file_name: image file {file} not found")
        out.append(ImageCaptions(file, str(file), texts[key]))
    return out


def _json_captions(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        for field in ("captions", "caption", "text"):
            if field in obj:
                obj = obj[field]
                break
        else:
            raise ValueError("json has no 'captions', 'caption' or 'text' field")
    return obj if isinstance(obj, list) else [obj]


def wds_captions(value: bytes, ext: str) -> list[str]:
    """Captions of a ``.txt`` member (one) or a ``.json`` one; ValueError when there is none."""
    text = value.decode("utf-8")
    caps = [text] if ext != "json" else _json_captions(json.loads(text))
    if not caps or not all(isinstance(c, str) and c.strip() for c in caps):
        raise ValueError("empty caption or a caption that is not a string")
    return [c.strip() for c in caps]


def _shard_samples(wds: ModuleType, url: str) -> Iterator[dict[str, Any]]:
    """The samples of one shard (``wds``: ``clipspace.data.wds``); DataError naming it."""
    try:
        yield from wds.tarfile_samples([{"url": url}])
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise DataError(f"{url}: unreadable webdataset shard ({exc})") from None


def _wds_sample(wds: ModuleType, sample: dict[str, Any], url: str
                ) -> tuple[bytes, str, list[str]]:
    """(image bytes, name, captions) of one shard sample (its members named by ``wds``'s
    IMAGE_KEYS and TEXT_KEYS); DataError naming shard and key."""
    image_keys, text_keys = wds.IMAGE_KEYS, wds.TEXT_KEYS
    where = f"{url}: sample {sample.get('__key__', '?')!r}"
    img = next((k for k in image_keys if k in sample), None)
    txt = next((k for k in text_keys if k in sample), None)
    if img is None or txt is None:
        what = f"image ({', '.join(image_keys)})" if img is None else "caption (txt, json)"
        raise DataError(f"{where}: no {what} member")
    try:
        caps = wds_captions(bytes(sample[txt]), txt)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{where}: bad .{txt} caption ({exc})") from None
    return bytes(sample[img]), where, caps


def read_wds_groups(pattern: str) -> list[ImageCaptions]:
    """One ``ImageCaptions`` per distinct image (by content) of the shards, in shard order."""
    wds = import_wds(f"wds:{pattern}", "data")
    urls = wds.expand_pattern(pattern)
    if not urls:
        raise DataError(f"webdataset pattern {pattern!r} matches no shard")
    groups: dict[str, ImageCaptions] = {}
    for url in urls:
        if "://" not in url and not Path(url).is_file():
            raise DataError(f"{url}: webdataset shard not found (pattern {pattern!r})")
        for sample in _shard_samples(wds, url):
            image, where, caps = _wds_sample(wds, sample, url)
            digest = hashlib.sha1(image).hexdigest()
            if digest in groups:
                groups[digest].captions.extend(caps)
            else:
                groups[digest] = ImageCaptions(image, where, caps)
    return list(groups.values())


__all__ = [
    "DEFAULT_CSV_LAYOUT",
    "CaptionedImages",
    "ImageCaptions",
    "group_captions",
    "pick_csv_layout",
    "read_coco_captions",
    "read_csv_groups",
    "read_utf8",
    "read_wds_groups",
    "wds_captions",
]
