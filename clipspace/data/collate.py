"""Batch collation: stack images, tokenize captions, tensorise integer labels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch


class Collate:
    """``Collate(tokenizer)(items)`` -> ``{"image": (B,C,H,W), "text": (B,L) long,
    "caption": list[str], <every int key>: LongTensor (B,), <other keys>: list}``.
    Picklable (for DataLoader workers)."""

    def __init__(self, tokenizer: Callable[[list[str]], torch.Tensor]) -> None:
        self.tokenizer = tokenizer

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        if not items:
            raise ValueError("cannot collate an empty batch")
        captions = [str(it["text"]) for it in items]
        batch: dict[str, Any] = {
            "image": torch.stack([torch.as_tensor(it["image"]) for it in items]),
            "text": self.tokenizer(captions),
            "caption": captions,
        }
        first = items[0]
        for key, value in first.items():
            if key in batch or key == "text":
                continue
            scalar_tensor = isinstance(value, torch.Tensor) and value.ndim == 0
            if isinstance(value, (bool, int, np.integer)) or (
                scalar_tensor and not value.is_floating_point()
            ):
                batch[key] = torch.tensor([int(it[key]) for it in items], dtype=torch.long)
            else:  # strings, lists (e.g. HierarCaps "captions"): passed through as a list
                batch[key] = [it[key] for it in items]
        return batch


def collate(tokenizer: Callable[[list[str]], torch.Tensor]) -> Collate:
    """Alias used by ARCHITECTURE.md: ``collate(tokenizer)``."""
    return Collate(tokenizer)
