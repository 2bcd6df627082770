"""The one embedding pass of an evaluation: images and their captions -> points, with labels.

Every suite (``eval.suites``), the analysis commands and the experiments work on the
``Embeddings`` this returns; nothing re-embeds the same split.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from clipspace.eval.retrieval import caption_groups

Tokenizer = Callable[[list[str]], Tensor]


@dataclass
class Embeddings:
    """Points of one evaluated split.

    ``image`` (N, D) and ``text`` (N, D, the point of each image's own caption; its first one
    when it has several) are float32 on the CPU; ``labels`` maps label names to (N,) integer
    arrays; ``positions`` are the rows' indices in ``dataset`` (a random subset under
    ``max_samples``); ``chains`` holds each row's generic -> specific captions where the data has
    them (HierarCaps). Data with several captions per image (items with ``"texts"``: COCO,
    Flickr30k, ``data.captioned_images``) also fills ``all_text`` (M, D, every caption),
    ``all_captions`` (M) and ``text_image`` (M,) int, the image row of each caption; they stay
    None / empty for one-caption data."""

    image: Tensor
    text: Tensor
    captions: list[str]
    labels: dict[str, np.ndarray]
    positions: np.ndarray
    dataset: Any = None
    chains: list[list[str]] = field(default_factory=list)
    all_text: Tensor | None = None
    text_image: np.ndarray | None = None
    all_captions: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.captions)

    def caption_ids(self) -> np.ndarray:
        """(N,) ids with equal captions sharing one id (``retrieval.caption_groups``)."""
        return caption_groups(self.captions)[0]


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"image": torch.stack([torch.as_tensor(it["image"]) for it in items])}
    out["caption"] = [str(it["text"]) for it in items]
    for k, v in items[0].items():
        if k in ("image", "text"):
            continue
        if isinstance(v, (bool, int, np.integer)):
            out[k] = torch.tensor([int(it[k]) for it in items], dtype=torch.long)
        elif k in ("captions", "texts"):
            out[k] = [list(it[k]) for it in items]
    return out


@torch.no_grad()
def encode_texts(
    model: Any, tokenizer: Tokenizer, texts: Sequence[str], batch_size: int = 256,
    device: str | torch.device = "cpu", tangent: bool = False,
) -> Tensor:
    """Text points (or tangent vectors) of ``texts``, (len, D) float32 on CPU."""
    out = []
    for s in range(0, len(texts), batch_size):
        tok = tokenizer(list(texts[s : s + batch_size])).to(device)
        out.append(model.encode_text(tok, tangent=tangent).float().cpu())
    return torch.cat(out, 0)


def random_subset(dataset: Dataset, max_samples: int, seed: int = 0) -> Dataset:
    """A seeded random subset kept in dataset order (datasets are often sorted by class)."""
    if not max_samples or max_samples >= len(dataset):  # type: ignore[arg-type]
        return dataset
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(dataset), int(max_samples), replace=False))  # type: ignore
    return Subset(dataset, pick.tolist())


def image_batches(
    model: Any, dataset: Dataset, batch_size: int = 256, device: str | torch.device = "cpu",
    max_samples: int = 0, progress: bool = True, workers: int = 0,
) -> tuple[Dataset, Iterator[tuple[Tensor, dict[str, Any]]]]:
    """(the embedded subset, an iterator of (image points on the CPU, collated batch)): the one
    image pass under ``embed`` and ``embed_shards.embed_to_directory``."""
    subset = random_subset(dataset, max_samples)
    loader = DataLoader(subset, batch_size=batch_size, shuffle=False, collate_fn=_collate,
                        num_workers=max(0, int(workers)))

    def points() -> Iterator[tuple[Tensor, dict[str, Any]]]:
        for batch in tqdm(loader, desc="embed images", disable=not progress, leave=False):
            yield model.encode_image(batch["image"].to(device)).float().cpu(), batch

    return subset, points()


def positions_of(subset: Dataset, n: int) -> np.ndarray:
    """Row indices of an embedded subset in its dataset (all ``n`` rows when not a Subset)."""
    return np.asarray(subset.indices) if isinstance(subset, Subset) else np.arange(n)


@torch.no_grad()
def embed(
    model: Any,
    dataset: Dataset,
    tokenizer: Tokenizer,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    max_samples: int = 0,
    progress: bool = True,
    workers: int = 0,
) -> Embeddings:
    """Embed every image of ``dataset`` (or a seeded random subset of ``max_samples``) and
    each distinct caption once (every caption of an image when items carry ``"texts"``).
    ``workers``: DataLoader processes decoding and preprocessing images beside the model."""
    subset, batches = image_batches(model, dataset, batch_size, device, max_samples, progress,
                                    workers)
    imgs: list[Tensor] = []
    captions: list[str] = []
    labels: dict[str, list[Tensor]] = {}
    chains: list[list[str]] = []
    texts: list[list[str]] = []
    for points, batch in batches:
        imgs.append(points)
        captions.extend(batch["caption"])
        chains.extend(batch.get("captions", []))
        texts.extend(batch.get("texts", []))
        for k, v in batch.items():
            if isinstance(v, Tensor) and k != "image":
                labels.setdefault(k, []).append(v)
    all_captions = [c for group in texts for c in group]
    points = encode_unique_texts(model, tokenizer, captions + all_captions, batch_size, device)
    positions = positions_of(subset, len(captions))
    return Embeddings(
        image=torch.cat(imgs, 0),
        text=points[: len(captions)],
        captions=captions,
        labels={k: torch.cat(v).numpy() for k, v in labels.items()},
        positions=positions,
        dataset=dataset,
        chains=chains,
        all_text=points[len(captions):] if texts else None,
        text_image=(np.repeat(np.arange(len(texts)), [len(g) for g in texts]) if texts
                    else None),
        all_captions=all_captions,
    )


def encode_unique_texts(model: Any, tokenizer: Tokenizer, texts: list[str], batch_size: int,
                   device: str | torch.device) -> Tensor:
    """Points of ``texts`` (len, D), encoding each distinct string once."""
    uniq, inverse = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)
    points = encode_texts(model, tokenizer, list(uniq), batch_size, device)
    return points[torch.from_numpy(inverse.reshape(-1))]


__all__ = ["Embeddings", "embed", "encode_texts", "encode_unique_texts", "random_subset"]
