"""Recall@K in both directions, computed in chunks (docs/reference.md section 4).

Memory is O(chunk x N), at most MAX_SCORE_ELEMENTS scores per block: each block of queries is
scored against the whole gallery and reduced to its top-K at once; the N x N matrix never
exists. With caption groups a hit is any retrieved item that carries the query's caption (MAD
captions repeat; COCO counts any of an image's captions): image i matches text j when
``img_groups[i] == txt_groups[j]``. Without groups, image i matches text i only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

#: a query block's score matrix holds at most this many elements (256 MB in float32)
MAX_SCORE_ELEMENTS = 2**26

ScoreFn = Callable[[Tensor, Tensor], Tensor]  # (img (B1,D), txt (B2,D)) -> (B1,B2) scores


def cosine_scores(img: Tensor, txt: Tensor) -> Tensor:
    """Cosine similarity of row-normalised inputs."""
    a = img / img.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b = txt / txt.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return a @ b.T


def _dot(q: Tensor, g: Tensor) -> Tensor:
    return q @ g.T


def caption_groups(
    image_captions: Sequence[str], text_captions: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Integer group ids so that equal caption strings share an id: (img_groups, txt_groups)."""
    texts = list(image_captions) if text_captions is None else list(text_captions)
    ids: dict[str, int] = {}
    ig = np.array([ids.setdefault(c, len(ids)) for c in image_captions], dtype=np.int64)
    tg = np.array([ids.setdefault(c, len(ids)) for c in texts], dtype=np.int64)
    return ig, tg


def _as_tensor(x: Any) -> Tensor:
    t = x if isinstance(x, Tensor) else torch.from_numpy(np.asarray(x))
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _recall_one_way(
    queries: Tensor,
    gallery: Tensor,
    score: Callable[[Tensor, Tensor], Tensor],
    q_groups: Tensor,
    g_groups: Tensor,
    ks: Sequence[int],
    chunk: int,
    desc: str,
    progress: bool,
) -> dict[int, float]:
    kmax = min(max(ks), gallery.shape[0])
    hits = {k: 0 for k in ks}
    n = queries.shape[0]
    chunk = max(1, min(chunk, MAX_SCORE_ELEMENTS // max(1, gallery.shape[0])))
    starts = range(0, n, chunk)
    for s in tqdm(starts, desc=desc, disable=not progress, leave=False):
        q = queries[s : s + chunk]
        sc = score(q, gallery)  # (b, N)
        top = sc.topk(kmax, dim=1).indices  # (b, kmax)
        match = g_groups.to(top.device)[top] == q_groups[s : s + chunk, None].to(top.device)
        first = torch.where(match.any(1), match.float().argmax(1), torch.full_like(top[:, 0], kmax))
        for k in ks:
            hits[k] += int((first < k).sum())
    return {k: hits[k] / n for k in ks}


@torch.no_grad()
def recall_at_k(
    img: Any,
    txt: Any,
    score_fn: ScoreFn | None = None,
    ks: Sequence[int] = (1, 5, 10),
    chunk: int = 1024,
    img_groups: Any = None,
    txt_groups: Any = None,
    progress: bool = False,
) -> dict[str, float]:
    """``{"i2t_r1": ..., "t2i_r1": ..., ...}``: image->text and text->image Recall@K.

    ``score_fn(img, txt)`` gives image-by-text scores (default cosine); it is called on an image
    chunk against all texts, and on all images against a text chunk (transposed).
    """
    xi, xt = _as_tensor(img), _as_tensor(txt)
    score = score_fn or cosine_scores
    if img_groups is None and txt_groups is None:
        if xi.shape[0] != xt.shape[0]:
            raise ValueError("without groups, image and text counts must match (pairs i <-> i)")
        gi = gt = torch.arange(xi.shape[0], device=xi.device)
    else:
        if img_groups is None or txt_groups is None:
            raise ValueError("give both img_groups and txt_groups")
        gi = torch.as_tensor(np.asarray(img_groups), dtype=torch.long, device=xi.device)
        gt = torch.as_tensor(np.asarray(txt_groups), dtype=torch.long, device=xt.device)
        if len(gi) != xi.shape[0] or len(gt) != xt.shape[0]:
            raise ValueError("group vectors must match the image / text counts")
    ks = sorted({int(k) for k in ks})
    if score_fn is None:  # cosine: normalise once, then plain dot products both ways
        xi = xi / xi.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        xt = xt / xt.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        fwd = back = _dot
    else:
        fwd, back = score, lambda q, g: score(g, q).T
    i2t = _recall_one_way(xi, xt, fwd, gi, gt, ks, chunk, "i2t", progress)
    t2i = _recall_one_way(xt, xi, back, gt, gi, ks, chunk, "t2i", progress)
    out = {f"i2t_r{k}": v for k, v in i2t.items()}
    out.update({f"t2i_r{k}": v for k, v in t2i.items()})
    return out
