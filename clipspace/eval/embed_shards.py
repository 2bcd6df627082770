"""Embedding without holding the points: ``embed_to_directory`` streams image and text points
batch by batch into memory-mapped ``.npy`` files (N in the millions in bounded memory).

Layout of the directory (written under a temporary name, renamed when complete)::

    image.npy, text.npy        (N, D) float32 points (each image and its first caption)
    <label>.npy                (N,) int64, one per label; positions.npy, caption_id.npy
    captions.json, meta.json   the captions (one per image) and where the points come from

``clipspace analyze --embeddings DIR`` reads the points memory-mapped; ``eval --embeddings DIR``
loads them. Memory: one batch of images plus the captions and labels (a few bytes per row).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib.format import open_memmap
from torch.utils.data import Dataset

from clipspace.eval.embed import Tokenizer, image_batches, positions_of
from clipspace.eval.retrieval import caption_groups
from clipspace.io import atomic_dir


class _PointFile:
    """An (n, D) float32 ``.npy`` file filled row block by row block."""

    def __init__(self, path: Path, n: int) -> None:
        self.path, self.n, self.array, self.row = path, n, None, 0

    def write(self, block: torch.Tensor) -> None:
        if self.array is None:
            self.array = open_memmap(self.path, mode="w+", dtype=np.float32,
                                     shape=(self.n, int(block.shape[1])))
        self.array[self.row : self.row + len(block)] = block.numpy()
        self.row += len(block)

    def close(self) -> None:
        if self.array is not None:
            self.array.flush()
            self.array = None


@torch.no_grad()
def embed_to_directory(
    model: Any, dataset: Dataset, tokenizer: Tokenizer, out_dir: str | Path,
    batch_size: int = 256, device: str | torch.device = "cpu", max_samples: int = 0,
    progress: bool = True, workers: int = 0, meta: dict[str, Any] | None = None,
) -> Path:
    """Stream the points of ``dataset`` (each image and its first caption) into ``out_dir``."""
    subset, batches = image_batches(model, dataset, batch_size, device, max_samples, progress,
                                    workers)
    captions: list[str] = []
    labels: dict[str, list[np.ndarray]] = {}
    with atomic_dir(Path(out_dir), overwrite=True) as tmp:
        image, text = _PointFile(tmp / "image.npy", len(subset)), _PointFile(
            tmp / "text.npy", len(subset))
        for points, batch in batches:
            image.write(points)
            tokens = tokenizer(list(batch["caption"])).to(device)
            text.write(model.encode_text(tokens).float().cpu())
            captions.extend(batch["caption"])
            for k, v in batch.items():
                if isinstance(v, torch.Tensor) and k != "image":
                    labels.setdefault(k, []).append(v.numpy())
        image.close()
        text.close()
        arrays = {**{k: np.concatenate(v) for k, v in labels.items()},
                  "positions": positions_of(subset, len(captions)),
                  "caption_id": caption_groups(captions)[0],
                  "caption_words": np.array([len(c.split("-")) for c in captions])}
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", np.asarray(arr, dtype=np.int64))
        (tmp / "captions.json").write_text(json.dumps(captions), encoding="utf-8")
        (tmp / "meta.json").write_text(json.dumps(meta or {}), encoding="utf-8")
    return Path(out_dir)


__all__ = ["embed_to_directory"]
