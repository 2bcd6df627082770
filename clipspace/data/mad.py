"""Torch Dataset over a MAD directory (layout in ``mad_schema``; docs/reference.md section 5).

Items: ``{"image": (3, 28, 28) float, "text": caption, "index": global image index,
"digit", "stroke", "swelling", "fracture", "scale", "colour": int}``. Images are read from
``images.npy`` through a memory map and normalised ``(x / 255 - MEAN) / STD``, or given to
``transform`` as an HWC uint8 numpy array. Captions follow the caption mode (see ``captions``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from clipspace.data import mad_schema as S
from clipspace.data.captions import CaptionPlan, check_mode
from clipspace.errors import DataError

SPLITS = ("train", "test", "all")


def read_manifest(root: str | Path) -> dict[str, Any]:
    """Parse and check ``root/manifest.json`` (format and version)."""
    if not Path(root).is_dir():
        raise DataError(f"{root}: MAD directory not found (create one with "
                        "`clipspace data mad --out DIR`)")
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise DataError(f"{path}: missing (is {root} a MAD directory? create one with "
                        "`clipspace data mad --out DIR`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable manifest ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != S.FORMAT:
        raise DataError(f"{path}: format is not {S.FORMAT!r}")
    if manifest.get("version") != S.VERSION:
        raise DataError(
            f"{path}: version {manifest.get('version')!r} is not supported (expected {S.VERSION})"
        )
    return manifest


def read_metadata(root: str | Path) -> dict[str, np.ndarray]:
    """``root/metadata.csv`` as column arrays: ints for index and labels, str for split/source."""
    path = Path(root) / "metadata.csv"
    if not path.is_file():
        raise DataError(f"{path}: missing")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file")
        missing = [c for c in S.METADATA_COLUMNS if c not in header]
        if missing:
            raise DataError(f"{path}: missing columns {missing}; found {header}")
        col = {c: header.index(c) for c in S.METADATA_COLUMNS}
        rows = list(reader)
    int_keys = ("index", *S.LABEL_KEYS)
    out: dict[str, np.ndarray] = {}
    for key in S.METADATA_COLUMNS:
        j = col[key]
        try:
            values = [r[j] for r in rows]
        except IndexError:
            bad = next(i for i, r in enumerate(rows) if len(r) <= j)
            raise DataError(f"{path}, line {bad + 2}: too few fields; columns {header}") from None
        if key in int_keys:
            try:
                out[key] = np.asarray(values, dtype=np.int64)
            except ValueError:
                bad = next(i for i, v in enumerate(values) if not v.strip().lstrip("-").isdigit())
                raise DataError(
                    f"{path}, line {bad + 2}: column {key!r} is not an integer: {values[bad]!r}"
                ) from None
        else:
            out[key] = np.asarray(values, dtype=str)
    for key in S.LABEL_KEYS:
        n_values = len(S.DIGIT_WORDS) if key == "digit" else len(S.VALUES[key])
        arr = out[key]
        if len(arr) and (arr.min() < 0 or arr.max() >= n_values):
            bad = int(np.flatnonzero((arr < 0) | (arr >= n_values))[0])
            raise DataError(f"{path}, line {bad + 2}: {key}={arr[bad]} outside 0..{n_values - 1}")
    return out


def load_image_array(path: Path) -> np.ndarray:
    """``images.npy`` of a MAD or MAD-scenes directory, memory-mapped: uint8 (N, H, W, 3);
    DataError naming the file when it is missing, unreadable or of another shape / dtype."""
    if not path.is_file():
        raise DataError(f"{path}: missing")
    try:
        images = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: unreadable ({err})") from err
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise DataError(f"{path}: expected uint8 (N, H, W, 3), got {images.dtype} "
                        f"{tuple(images.shape)}")
    return images


class MADDataset(Dataset):
    """Map-style dataset over one split of a MAD directory."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        num_attrs: int = 5,
        main_object: str = "",
        objects_only: bool = False,
        redraw_per_epoch: bool = False,
        seed: int = 0,
        transform=None,
        max_samples: int = 0,
    ) -> None:
        self.root = Path(root)
        if split not in SPLITS:
            raise DataError(f"MAD split must be one of {SPLITS}, got {split!r}")
        check_mode(num_attrs, main_object, objects_only)
        self.manifest = read_manifest(self.root)
        meta = read_metadata(self.root)
        self.images = load_image_array(self.root / "images.npy")
        rows = np.arange(len(meta["index"])) if split == "all" else np.flatnonzero(
            meta["split"] == split
        )
        if len(rows) == 0:
            raise DataError(f"{self.root / 'metadata.csv'}: split {split!r} has no images")
        if max_samples and max_samples > 0:
            rows = rows[: int(max_samples)]
        self.indices = meta["index"][rows]
        if len(self.indices) and self.indices.max() >= len(self.images):
            raise DataError(
                f"{self.root / 'metadata.csv'}: index {int(self.indices.max())} >= "
                f"{len(self.images)} images in {self.root / 'images.npy'}"
            )
        self.labels: dict[str, np.ndarray] = {k: meta[k][rows] for k in S.LABEL_KEYS}
        self.split = split
        self.num_attrs = int(num_attrs)
        self.main_object = main_object
        self.objects_only = bool(objects_only)
        self.redraw_per_epoch = bool(redraw_per_epoch)
        self.seed = int(seed)
        self.transform = transform
        self.epoch = 0
        self._mean = torch.tensor(S.MEAN, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(S.STD, dtype=torch.float32).view(3, 1, 1)
        self.plan = self._draw_plan(0)

    def _draw_plan(self, epoch: int) -> CaptionPlan:
        return CaptionPlan.draw(
            len(self), self.num_attrs, self.main_object, self.objects_only, self.seed,
            epoch if self.redraw_per_epoch else 0,
        )

    def set_epoch(self, epoch: int) -> None:
        """Select the captions of ``epoch`` (a no-op unless ``redraw_per_epoch``)."""
        epoch = int(epoch)
        if self.redraw_per_epoch and epoch != self.epoch:
            self.plan = self._draw_plan(epoch)
        self.epoch = epoch

    def __len__(self) -> int:
        return int(len(self.indices))

    def caption(self, i: int) -> str:
        return self.plan.text(i, self.labels)

    def captions(self) -> list[str]:
        """Captions of every sample for the current epoch."""
        return [self.caption(i) for i in range(len(self))]

    def image_array(self, i: int) -> np.ndarray:
        """Raw HWC uint8 image of sample ``i``."""
        return np.array(self.images[int(self.indices[i])])  # copy out of the memory map

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        arr = self.image_array(i)
        if self.transform is not None:
            image = self.transform(arr)
        else:
            x = torch.from_numpy(arr).permute(2, 0, 1).float() / 255.0
            image = (x - self._mean) / self._std
        item: dict[str, Any] = {"image": image, "text": self.caption(i),
                                "index": int(self.indices[i])}
        for k in S.LABEL_KEYS:
            item[k] = int(self.labels[k][i])
        return item

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """Batched fetch (used by DataLoader with a batch sampler): one memory-map gather and
        one normalisation for the whole batch; same items as ``[self[i] for i in indices]``."""
        if self.transform is not None or not len(indices):
            return [self[i] for i in indices]
        idx = np.asarray(indices, dtype=np.int64)
        if idx.min() < -len(self) or idx.max() >= len(self):
            raise IndexError(int(idx.max()))
        idx %= len(self)
        arr = np.asarray(self.images[self.indices[idx]])
        x = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)
        x = ((x - self._mean) / self._std).contiguous()
        labels = {k: self.labels[k][idx].tolist() for k in S.LABEL_KEYS}
        glob = self.indices[idx].tolist()
        items = []
        for j, i in enumerate(idx.tolist()):
            item: dict[str, Any] = {"image": x[j], "text": self.caption(i), "index": glob[j]}
            for k in S.LABEL_KEYS:
                item[k] = labels[k][j]
            items.append(item)
        return items

    def __repr__(self) -> str:
        return (f"MADDataset({str(self.root)!r}, split={self.split!r}, n={len(self)}, "
                f"num_attrs={self.num_attrs}, main_object={self.main_object!r}, "
                f"objects_only={self.objects_only}, redraw_per_epoch={self.redraw_per_epoch})")
