"""Consistency-rule retrieval on MAD: a caption matches an image when every attribute it names
holds for that image (the caption "3-red" matches every red 3, whatever its stroke or scale).

Exact-string Recall@K counts only captions identical to the image's own; on MAD that is about
0.04 for every method by construction (which 2 of 5 attributes a caption names, and in which
order, cannot be read from the image). The consistency rule asks what a reader means by a
correct retrieval: the retrieved caption is true of the image, or the retrieved image fits the
caption. Consistency R@K >= exact R@K (an image's own caption is always consistent with it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from clipspace.data import mad_schema as S
from clipspace.data.captions import parse_caption

UNNAMED = -1


def caption_table(captions: Sequence[str]) -> np.ndarray:
    """(N, slots) value each caption names per MAD label slot (``UNNAMED`` where it names
    none), slots in ``mad_schema.LABEL_KEYS`` order."""
    out = np.full((len(captions), len(S.LABEL_KEYS)), UNNAMED, dtype=np.int64)
    for row, text in enumerate(captions):
        for key, value in parse_caption(text).items():
            out[row, S.LABEL_KEYS.index(key)] = value
    return out


def image_table(labels: Mapping[str, np.ndarray]) -> np.ndarray:
    """(N, slots) the image's value per slot, ``mad_schema.LABEL_KEYS`` order."""
    return np.stack([np.asarray(labels[k], dtype=np.int64) for k in S.LABEL_KEYS], 1)


def _consistent(cap: Tensor, img: Tensor) -> Tensor:
    """Elementwise over broadcast rows: every named slot of ``cap`` equals ``img``'s."""
    return ((cap == UNNAMED) | (cap == img)).all(-1)


@torch.no_grad()
def consistency_recall(
    img: Tensor,
    txt: Tensor,
    captions: Sequence[str],
    labels: Mapping[str, np.ndarray],
    score_fn: Callable[[Tensor, Tensor], Tensor],
    ks: Sequence[int] = (1, 5, 10),
    chunk: int = 1024,
) -> dict[str, float]:
    """``consistent_i2t_r{k}``: share of images with a consistent caption among the k best
    scored captions (all N captions are candidates); ``consistent_t2i_r{k}``: share of captions
    with a consistent image among the k best scored images. Memory O(chunk x N)."""
    cap = torch.from_numpy(caption_table(captions))
    lab = torch.from_numpy(image_table(labels))
    kmax = min(max(ks), img.shape[0], txt.shape[0])
    out: dict[str, float] = {}
    for name, queries, gallery, q_tab, g_tab, q_is_img in (
        ("i2t", img, txt, lab, cap, True), ("t2i", txt, img, cap, lab, False),
    ):
        hits = torch.zeros(queries.shape[0], kmax, dtype=torch.bool)
        for s in range(0, queries.shape[0], chunk):
            q = queries[s : s + chunk]
            scores = score_fn(q, gallery) if q_is_img else score_fn(gallery, q).T
            top = scores.float().topk(kmax, dim=1).indices.cpu()  # (c, kmax)
            cand, mine = g_tab[top], q_tab[s : s + chunk, None, :]  # (c, kmax, slots)
            # the caption's named slots must hold for the image: caption first, image second
            hits[s : s + chunk] = (_consistent(cand, mine) if q_is_img
                                   else _consistent(mine, cand))
        for k in ks:
            kk = min(k, kmax)
            out[f"consistent_{name}_r{k}"] = float(hits[:, :kk].any(1).double().mean())
    return out


def mad_consistency(emb: Any, score_fn: Callable[[Tensor, Tensor], Tensor],
                    device: Any = "cpu") -> dict[str, float]:
    """``consistency_recall`` of an ``Embeddings`` of MAD (all label slots present), else {}."""
    if not all(k in emb.labels for k in S.LABEL_KEYS):
        return {}
    return consistency_recall(emb.image.to(device), emb.text.to(device), emb.captions,
                              emb.labels, score_fn)


__all__ = ["caption_table", "consistency_recall", "image_table", "mad_consistency"]
