"""Keep a random fraction of each training caption's words or sentences (Two Effects, One
Trigger, Fig. 7c and 15: less text per image = a larger information imbalance).

For a caption of n units (``word``: whitespace-separated tokens; ``sentence``: text ending in
``.``, ``!`` or ``?`` followed by whitespace, or the end) the kept caption is
k = max(1, round(fraction * n)) units, joined in their original order: with span ``scattered``
(the default) any k units drawn without replacement; with span ``contiguous`` one run of k
consecutive units at a random start (the authors' code keeps a contiguous half or quarter of the
words: ``sparsify_caption_drop_continous_half`` in lmb-freiburg/two-effects-one-trigger).
The draw is a pure function of (seed, epoch, item index), so a run, a resumed run and every
DataLoader worker see the same captions, and each epoch draws again.

``with_caption_fraction(dataset, cfg, seed)`` wraps any dataset whose items carry ``"text"``
(and optionally ``"texts"``, every caption of the item) and an ``"index"`` (every clipspace
reader): map-style datasets (CSV, COCO-style captioned images, HierarCaps) and iterable ones
(WebDataset). MAD captions are cut by ``data.num_attrs`` instead (config validation says so).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

from torch.utils.data import Dataset, IterableDataset

from clipspace.config import DataConfig

UNITS: tuple[str, ...] = ("word", "sentence")
SPANS: tuple[str, ...] = ("scattered", "contiguous")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_units(caption: str, unit: str) -> list[str]:
    """The words (whitespace split) or sentences (split after . ! ? and whitespace) of
    ``caption``, empty pieces dropped."""
    if unit == "word":
        return caption.split()
    if unit == "sentence":
        return [s.strip() for s in _SENTENCE_END.split(caption.strip()) if s.strip()]
    raise ValueError(f"caption unit must be one of {UNITS}, got {unit!r}")


def kept_count(n: int, fraction: float) -> int:
    """k = max(1, round(fraction * n)) units of n (0 for an empty caption)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"caption fraction must be in (0, 1], got {fraction!r}")
    return min(n, max(1, round(fraction * n))) if n else 0


def kept_indices(n: int, k: int, span: str, rng: random.Random) -> list[int]:
    """The positions of the k kept units of n, ascending: any k (``scattered``) or one run of k
    consecutive ones starting uniformly in [0, n - k] (``contiguous``)."""
    if span == "scattered":
        return sorted(rng.sample(range(n), k))
    if span == "contiguous":
        start = rng.randrange(n - k + 1)
        return list(range(start, start + k))
    raise ValueError(f"caption span must be one of {SPANS}, got {span!r}")


def keep_fraction(caption: str, fraction: float, unit: str, rng: random.Random,
                  span: str = "scattered") -> str:
    """``caption`` cut to ``kept_count`` of its units, drawn by ``rng``, order kept."""
    units = split_units(caption, unit)
    k = kept_count(len(units), fraction)
    if k == len(units):
        return caption
    return " ".join(units[i] for i in kept_indices(len(units), k, span, rng))


def item_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The generator of one item's draw: seeded by the string ``seed-epoch-index`` (stable
    across processes and Python runs)."""
    return random.Random(f"caption-fraction-{seed}-{epoch}-{index}")


class _Cut:
    """Shared part of both wrappers: the fraction, unit, span, seed and epoch, and the item cut."""

    def __init__(self, dataset: Any, fraction: float, unit: str, seed: int,
                 span: str = "scattered") -> None:
        kept_count(1, fraction)  # range check
        split_units("", unit)  # unit check
        kept_indices(1, 1, span, random.Random(0))  # span check
        self.dataset, self.fraction, self.unit, self.seed = dataset, fraction, unit, seed
        self.span = span
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw again for ``epoch`` (and tell the wrapped dataset)."""
        self.epoch = int(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def cut(self, item: dict[str, Any], position: int) -> dict[str, Any]:
        """``item`` with ``text`` (and each of ``texts``) cut; ``index`` keys the draw."""
        rng = item_rng(self.seed, self.epoch, int(item.get("index", position)))
        out = dict(item)
        out["text"] = keep_fraction(str(item["text"]), self.fraction, self.unit, rng, self.span)
        if isinstance(item.get("texts"), list):
            out["texts"] = [keep_fraction(str(t), self.fraction, self.unit, rng, self.span)
                            for t in item["texts"]]
        return out


class CaptionFraction(_Cut, Dataset):
    """Map-style wrapper: item i of ``dataset`` with its caption(s) cut."""

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.cut(self.dataset[index], index)


class IterableCaptionFraction(_Cut, IterableDataset):
    """Iterable wrapper (WebDataset): every yielded item with its caption(s) cut."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for position, item in enumerate(self.dataset):
            yield self.cut(item, position)


def with_caption_fraction(dataset: Dataset, cfg: DataConfig, seed: int = 0) -> Dataset:
    """``dataset`` unchanged when ``data.caption_fraction`` is 1, else wrapped so that each
    caption keeps that fraction of its ``data.caption_unit`` units (``data.caption_span``)."""
    if cfg.caption_fraction >= 1.0:
        return dataset
    wrapper = IterableCaptionFraction if isinstance(dataset, IterableDataset) else CaptionFraction
    return wrapper(dataset, cfg.caption_fraction, cfg.caption_unit, seed, cfg.caption_span)


__all__ = [
    "SPANS",
    "UNITS",
    "CaptionFraction",
    "IterableCaptionFraction",
    "item_rng",
    "keep_fraction",
    "kept_indices",
    "kept_count",
    "split_units",
    "with_caption_fraction",
]
