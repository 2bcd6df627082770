"""Read MAD scenes (docs/data.md, "MAD scenes"): scenes, their boxes, box crops and batches.

On-disk layout (written atomically by ``clipspace data mad-scenes``, see
``mad_scenes_generate``):
  manifest.json  {"format": "clipspace-mad-scenes", "version": 1, "mad", "seed", "settings",
                 "counts", ...}
  images.npy     uint8 (N, canvas, canvas, 3): train scenes first, then test scenes
  scenes.csv     index, split, num_boxes, caption (one row per scene, in image order)
  boxes.csv      scene, box, x0, y0, x1, y1, source, digit, stroke, swelling, fracture, scale,
                 colour, caption (one row per box, scene-major; box [x0, x1) x [y0, y1) pixels,
                 source = row of the MAD images.npy, labels as in MAD's metadata.csv)

The data layer knows no model: crops are resized to a size the caller gives (the image tower's
input size).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from clipspace.data import mad_schema as S
from clipspace.data.mad import load_image_array
from clipspace.data.mad_scenes_generate import BOX_COLUMNS, FORMAT, SCENE_COLUMNS, VERSION
from clipspace.errors import DataError

SPLITS = ("train", "test", "all")


def crop_boxes(image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crops of ``boxes`` (K, 4) ``x0, y0, x1, y1`` from ``image`` (C, H, W), as (K, C, size,
    size) float.

    Rule: each box is rounded to integers, clipped to the canvas and widened to at least one
    pixel per axis (``x0`` into ``0..W-1``, ``x1`` into ``x0+1..W``), so an empty box becomes
    the one-pixel box at its clipped ``(x0, y0)`` and no box gives a non-finite crop. The box's
    pixels are resized with ``torch.nn.functional.interpolate(mode="bilinear", antialias=True,
    align_corners=False)`` (a triangle filter, widened when shrinking; the identity when the
    box side equals ``size``). Non-square boxes are stretched to a square.
    """
    if image.ndim != 3:
        raise ValueError(f"image must be (C, H, W), got {tuple(image.shape)}")
    c, h, w = image.shape
    b = torch.as_tensor(boxes).reshape(-1, 4).round().long().tolist()
    x = image if image.is_floating_point() else image.float()
    out = x.new_empty((len(b), c, int(size), int(size)))
    for k, (x0, y0, x1, y1) in enumerate(b):
        x0, y0 = min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)
        x1, y1 = min(max(x1, x0 + 1), w), min(max(y1, y0 + 1), h)
        patch = x[None, :, y0:y1, x0:x1]
        out[k] = F.interpolate(patch, size=(int(size), int(size)), mode="bilinear",
                               antialias=True, align_corners=False)[0]
    return out


def read_scenes_manifest(root: str | Path) -> dict[str, Any]:
    """Parse and check ``root/manifest.json`` of a MAD-scenes directory."""
    root = Path(root)
    path = root / "manifest.json"
    if not root.is_dir():
        raise DataError(f"{root}: MAD-scenes directory not found (create one with "
                        "`clipspace data mad-scenes --mad MAD --out DIR`)")
    if not path.is_file():
        raise DataError(f"{path}: missing (is {root} a MAD-scenes directory?)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable manifest ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path}: format is not {FORMAT!r}")
    if manifest.get("version") != VERSION:
        raise DataError(f"{path}: version {manifest.get('version')!r} is not supported "
                        f"(expected {VERSION})")
    return manifest


def _read_table(path: Path, columns: Sequence[str]) -> list[list[str]]:
    """Rows of a CSV file with the exact header ``columns`` (DataError naming the file)."""
    if not path.is_file():
        raise DataError(f"{path}: missing")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header != list(columns):
            raise DataError(f"{path}: expected columns {list(columns)}, found {header}")
        rows = list(reader)
    bad = next((i for i, r in enumerate(rows) if len(r) != len(columns)), None)
    if bad is not None:
        raise DataError(f"{path}, line {bad + 2}: expected {len(columns)} fields")
    return rows


def _ints(path: Path, rows: list[list[str]], cols: range) -> np.ndarray:
    """Integer columns ``cols`` of ``rows`` as an (N, len(cols)) int64 array."""
    try:
        return np.asarray([[int(r[j]) for j in cols] for r in rows], dtype=np.int64).reshape(
            len(rows), len(cols))
    except ValueError:
        bad = next(i for i, r in enumerate(rows)
                   if not all(r[j].strip().lstrip("-").isdigit() for j in cols))
        raise DataError(f"{path}, line {bad + 2}: a non-integer field") from None


class MadScenes(Dataset):
    """Map-style dataset over one split of a MAD-scenes directory.

    Items: ``{"image": (3, H, W) float, "text": scene caption, "index": scene index,
    "boxes": (K, 4) long (x0, y0, x1, y1), "box_texts": list of K captions, "box_images":
    (K, 3, crop_size, crop_size) float (``crop_boxes``), "box_digit": (K,) long}``. Images are
    normalised ``(x / 255 - MEAN) / STD`` (MAD's), before cropping. ``image_size`` > 0 resizes
    the scene itself to that square (as a crop of the whole canvas; boxes stay in canvas
    pixels), the tower's input size when it is not the canvas.
    """

    def __init__(self, root: str | Path, split: str = "train", crop_size: int = 28,
                 max_samples: int = 0, image_size: int = 0) -> None:
        self.root = Path(root)
        if split not in SPLITS:
            raise DataError(f"MAD-scenes split must be one of {SPLITS}, got {split!r}")
        if int(crop_size) < 1:
            raise DataError(f"crop_size must be >= 1, got {crop_size}")
        self.manifest = read_scenes_manifest(self.root)
        self.images = load_image_array(self.root / "images.npy")
        self._read_tables(split, int(max_samples))
        self.split = split
        self.crop_size = int(crop_size)
        self.image_size = int(image_size)  # 0: the canvas as it is
        self._mean = torch.tensor(S.MEAN, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(S.STD, dtype=torch.float32).view(3, 1, 1)

    def _read_tables(self, split: str, max_samples: int) -> None:
        """Scene rows of ``split`` and their boxes (grouped by scene, box order kept)."""
        s_path, b_path = self.root / "scenes.csv", self.root / "boxes.csv"
        scenes = _read_table(s_path, SCENE_COLUMNS)
        keep = [r for r in scenes if split == "all" or r[1] == split]
        if not keep:
            raise DataError(f"{s_path}: split {split!r} has no scenes")
        if max_samples > 0:
            keep = keep[:max_samples]
        self.indices = _ints(s_path, keep, range(0, 1))[:, 0]
        if self.indices.min() < 0 or self.indices.max() >= len(self.images):
            raise DataError(f"{s_path}: scene index outside 0..{len(self.images) - 1}")
        self.texts = [r[3] for r in keep]
        rows = _read_table(b_path, BOX_COLUMNS)
        ints = _ints(b_path, rows, range(len(BOX_COLUMNS) - 1))
        order = np.lexsort((ints[:, 1], ints[:, 0]))  # by scene, then box
        ints, caps = ints[order], [rows[i][-1] for i in order]
        first = np.searchsorted(ints[:, 0], self.indices, side="left")
        last = np.searchsorted(ints[:, 0], self.indices, side="right")
        self._span = np.stack([first, last], axis=1)
        self._boxes = ints[:, 2:6]
        self._digit = ints[:, 7]
        self._box_texts = caps

    def __len__(self) -> int:
        return int(len(self.indices))

    def image_array(self, i: int) -> np.ndarray:
        """Raw HWC uint8 scene ``i``."""
        return np.array(self.images[int(self.indices[i])])

    def boxes(self, i: int) -> torch.Tensor:
        """(K, 4) long boxes of scene ``i``."""
        a, b = self._span[i]
        return torch.from_numpy(self._boxes[a:b].copy())

    def box_texts(self, i: int) -> list[str]:
        a, b = self._span[i]
        return self._box_texts[a:b]

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        x = torch.from_numpy(self.image_array(i)).permute(2, 0, 1).float() / 255.0
        image = (x - self._mean) / self._std
        boxes = self.boxes(i)
        a, b = self._span[i]
        crops = crop_boxes(image, boxes, self.crop_size)
        h, w = image.shape[-2:]
        if self.image_size and (h, w) != (self.image_size, self.image_size):
            image = crop_boxes(image, torch.tensor([[0, 0, w, h]]), self.image_size)[0]
        return {"image": image, "text": self.texts[i], "index": int(self.indices[i]),
                "boxes": boxes, "box_texts": self.box_texts(i),
                "box_images": crops,
                "box_digit": torch.from_numpy(self._digit[a:b].copy())}

    def __repr__(self) -> str:
        return (f"MadScenes({str(self.root)!r}, split={self.split!r}, n={len(self)}, "
                f"crop_size={self.crop_size})")


class SceneCollate:
    """``SceneCollate(tokenizer=None)(items)`` -> a batch of B scenes with M boxes in all:
    ``{"image": (B, C, H, W), "caption": list of B scene captions, "index": (B,) long,
    "box_image": (M, C, s, s), "box_caption": list of M box captions, "box_scene": (M,) long
    (row of each box's scene in the batch), "boxes": (M, 4) long, "box_digit": (M,) long}``,
    plus ``"text"`` (B, L) and ``"box_text"`` (M, L) tokens when a tokenizer is given. Boxes
    keep scene order, then box order. Picklable."""

    def __init__(self, tokenizer: Callable[[list[str]], torch.Tensor] | None = None) -> None:
        self.tokenizer = tokenizer

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        if not items:
            raise ValueError("cannot collate an empty batch")
        counts = torch.tensor([len(it["box_texts"]) for it in items], dtype=torch.long)
        crops = [it["box_images"] for it in items]
        batch: dict[str, Any] = {
            "image": torch.stack([it["image"] for it in items]),
            "caption": [str(it["text"]) for it in items],
            "index": torch.tensor([int(it["index"]) for it in items], dtype=torch.long),
            "box_image": torch.cat(crops),
            "box_caption": [str(t) for it in items for t in it["box_texts"]],
            "box_scene": torch.repeat_interleave(torch.arange(len(items)), counts),
            "boxes": torch.cat([it["boxes"].reshape(-1, 4) for it in items]).long(),
            "box_digit": torch.cat([it["box_digit"].reshape(-1) for it in items]).long(),
        }
        if self.tokenizer is not None:
            batch["text"] = self.tokenizer(batch["caption"])
            batch["box_text"] = self.tokenizer(batch["box_caption"])
        return batch


def collate_scenes(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``SceneCollate()(items)``: the batch without tokens."""
    return SceneCollate()(items)
