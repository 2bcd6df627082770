"""Recall@K in both directions, computed in tiles (docs/reference.md section 4).

The image x text score matrix is scored tile by tile (at most ``chunk`` images x as many texts
as MAX_SCORE_ELEMENTS allows); every tile serves both directions: its rows update the running
top-K texts of its images (``topk`` per row), its columns the running top-K images of its texts
(``_update_columns``: once the lists are full, only scores above a text's current K-th score
can enter, so the tile is filtered against those thresholds and the few survivors merged).
Memory is one tile, its 1-byte mask and at most FILTER_MAX_SHARE of it as candidates, plus
O(K x (images in a block + texts)) for the running lists; the N x N matrix never exists, and
each score is computed once for both directions. docs/evaluation.md ("Retrieval: ranking
scores, tiles and ties") has the measurements.

Only the ranking matters, so ``score_fn`` may be any function with the same ranking as the
model's similarity along rows and columns, e.g. ``model.rank_scores`` (no acos/acosh/sqrt; the
same matmul cost as the cosine).

Order and ties: the gallery of a query is ordered by score, larger first, and equal scores by
gallery index, lower first; Recall@K counts a hit when a matching item is among the first K.
(Before this rule was explicit, ``torch.topk`` chose among ties: on the CPU it kept the lowest
indices among items tied at the K-th place for galleries of at least 64 K items, as here, but
ordered tied items inside the top K arbitrarily.) A rank score equals the exact score's order
only up to float rounding (``Objective.rank_scores``); NaN scores are not supported.

With caption groups a hit is any retrieved item that carries the query's caption (MAD captions
repeat; COCO counts any of an image's captions): image i matches text j when
``img_groups[i] == txt_groups[j]``. Without groups, image i matches text i only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

#: a score tile holds at most this many elements (256 MB in float32)
MAX_SCORE_ELEMENTS = 2**26

ScoreFn = Callable[[Tensor, Tensor], Tensor]  # (img (B1,D), txt (B2,D)) -> (B1,B2) scores
TopK = tuple[Tensor, Tensor]  # (values, indices) per row, ordered (value desc, index asc)


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


def _order(v: Tensor, i: Tensor) -> TopK:
    """Rows of (values, indices), values already descending, with equal values put in index
    order (only rows that have equal neighbours are re-sorted)."""
    rows = (v[:, 1:] == v[:, :-1]).any(dim=1).nonzero().squeeze(1)
    if rows.numel():
        vr, ir = v[rows], i[rows]
        ir, perm = ir.sort(dim=1)
        vr, perm2 = vr.gather(1, perm).sort(dim=1, descending=True, stable=True)
        v, i = v.clone(), i.clone()
        v[rows], i[rows] = vr, ir.gather(1, perm2)
    return v, i


def tile_topk(s: Tensor, k: int, offset: int = 0) -> TopK:
    """The first ``min(k, s.shape[1])`` columns of every row of ``s`` in the order (score desc,
    column asc), as (values, column + offset). ``s`` may be a transposed view.

    ``topk(k + 1)`` finds the K-th score; a row whose (K+1)-th score equals it has more tied
    candidates than places, and for those rows only the tied columns are re-chosen, lowest first.
    """
    n = s.shape[1]
    if k >= n:
        v, i = s.sort(dim=1, descending=True, stable=True)
        return v, i + offset
    v, i = s.topk(k + 1, dim=1)
    tied = (v[:, k - 1] == v[:, k]).nonzero().squeeze(1)
    v, i = v[:, :k].contiguous(), i[:, :k].contiguous()
    if tied.numel():
        sub = s[tied]
        thr = v[tied, k - 1 :]
        above, equal = sub > thr, sub == thr
        need = k - above.sum(dim=1, keepdim=True)
        take = above | (equal & (equal.cumsum(dim=1) <= need))
        cols = take.nonzero()[:, 1].view(-1, k)  # row-major: ascending columns per row
        vt, perm = sub.gather(1, cols).sort(dim=1, descending=True, stable=True)
        v[tied], i[tied] = vt, cols.gather(1, perm)
    v, i = _order(v, i)
    return v, i + offset


def merge_topk(a: TopK | None, b: TopK, k: int) -> TopK:
    """Top-k of two ordered candidate lists of the same rows, where every index in ``a`` is
    lower than every index in ``b`` (a stable sort then keeps the index order among ties)."""
    if a is None:
        return b
    v = torch.cat([a[0], b[0]], dim=1)
    i = torch.cat([a[1], b[1]], dim=1)
    v, perm = v.sort(dim=1, descending=True, stable=True)
    return v[:, :k], i.gather(1, perm[:, :k])


def _desc_key(v: Tensor) -> Tensor:
    """float32 -> int64 in [0, 2^32) whose ascending order is the descending order of the
    values, equal values giving equal keys (-0.0 is first made +0.0); NaN not supported."""
    b = (v + 0.0).view(torch.int32).to(torch.int64)
    key = torch.where(b < 0, -(2**31) - 1 - b, b)  # ascending with the float value
    return (2**31 - 1) - key


def _merge_candidates(top: TopK, col: Tensor, val: Tensor, idx: Tensor) -> TopK:
    """Merge scattered candidates (column ``col`` of the running lists, score ``val``, gallery
    index ``idx``, indices above all in ``top``, in ascending index order per column) into the
    running top-k lists ``top`` (one row per column), keeping (score desc, index asc)."""
    tv, ti = top
    n, k = tv.shape
    touched = (torch.bincount(col, minlength=n) > 0).nonzero().squeeze(1)
    where = torch.full((n,), -1, dtype=torch.long, device=col.device)
    where[touched] = torch.arange(len(touched), device=col.device)
    t = len(touched)
    # the touched lists first (lower indices, ordered), then the candidates: a stable sort by
    # (list, score desc) keeps that order among equal scores
    c_all = torch.cat([torch.arange(t, device=col.device).repeat_interleave(k), where[col]])
    v_all = torch.cat([tv[touched].reshape(-1), val])
    i_all = torch.cat([ti[touched].reshape(-1), idx])
    if v_all.dtype == torch.float32:  # one stable sort of (list, score desc) int64 keys
        order = (c_all * 2**32 + _desc_key(v_all)).sort(stable=True).indices
    else:
        o1 = v_all.sort(descending=True, stable=True).indices
        order = o1[c_all[o1].sort(stable=True).indices]
    counts = torch.bincount(c_all, minlength=t)
    starts = counts.cumsum(0) - counts
    sel = order[starts[:, None] + torch.arange(k, device=col.device)]
    tv, ti = tv.clone(), ti.clone()
    tv[touched], ti[touched] = v_all[sel], i_all[sel]
    return tv, ti


#: the first rows of a column tile are ranked densely; the running K-th score then filters
FIRST_DENSE_ROWS = 64
#: a column update merges the scores above the running thresholds when they are at most this
#: share of the slice (bounded memory for the candidates), else ranks the slice densely
FILTER_MAX_SHARE = 1 / 16


def _update_columns(top: TopK | None, s: Tensor, k: int, offset: int) -> TopK:
    """Running top-k rows of every column of ``s`` (rows = gallery ``offset ...``), merged into
    ``top``. Once every list is full, only scores above a column's current K-th score can enter
    (a later, higher index loses ties), so the tile is filtered against those thresholds and
    only the survivors are merged; a dense column top-k when too many survive."""
    if top is None or top[0].shape[1] < k:
        return merge_topk(top, tile_topk(s.T, k, offset), k)
    mask = s > top[0][:, -1]
    m = int(mask.count_nonzero())
    if m == 0:
        return top
    if m > max(int(s.numel() * FILTER_MAX_SHARE), 1):
        return merge_topk(top, tile_topk(s.T, k, offset), k)
    r, c = mask.nonzero(as_tuple=True)  # row-major: ascending rows per column
    del mask
    return _merge_candidates(top, c, s[r, c], r + offset)


def _slices(r0: int, r1: int) -> list[tuple[int, int]]:
    """[start, end) sub-blocks of rows r0..r1 for the column update: ending at
    FIRST_DENSE_ROWS, then growing 4x with the rows seen (0..64, ..256, ..1024, ...), so that
    the thresholds are sharp before most rows arrive; one slice once r0 is large."""
    out, a = [], r0
    while a < r1:
        b = min(r1, max(a + FIRST_DENSE_ROWS, 4 * a))
        out.append((a, b))
        a = b
    return out


def _hits(top: Tensor, g_groups: Tensor, q_groups: Tensor, ks: Sequence[int]) -> dict[int, int]:
    """Per K, how many queries have a matching gallery item among their first K in ``top``."""
    kmax = max(ks)
    match = g_groups.to(top.device)[top] == q_groups.to(top.device)[:, None]
    first = torch.where(match.any(1), match.float().argmax(1), torch.full_like(top[:, 0], kmax))
    return {k: int((first < k).sum()) for k in ks}


def _tiles(n: int, size: int) -> list[tuple[int, int]]:
    """[start, end) of ceil(n / size) near-equal tiles covering 0..n."""
    count = max(1, math.ceil(n / max(1, size)))
    step = math.ceil(n / count)
    return [(s, min(n, s + step)) for s in range(0, n, step)]


@torch.no_grad()
def recall_at_k(
    img: Any,
    txt: Any,
    score_fn: ScoreFn | None = None,
    ks: Sequence[int] = (1, 5, 10),
    chunk: int = 4096,
    img_groups: Any = None,
    txt_groups: Any = None,
    progress: bool = False,
) -> dict[str, float]:
    """``{"i2t_r1": ..., "t2i_r1": ..., ...}``: image->text and text->image Recall@K.

    ``score_fn(img, txt)`` gives image-by-text scores (default cosine): each row ranks the texts
    for its image, each column the images for its text. It is called on tiles of at most
    ``chunk`` images by up to MAX_SCORE_ELEMENTS / chunk texts, and only its order matters, so
    a cheaper score with the same order along rows and columns gives the same recall
    (``ClipModel.rank_scores`` for ``ClipModel.similarity``). Ties: see the module docstring.
    """
    xi, xt = _as_tensor(img), _as_tensor(txt)
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
    if xi.shape[0] == 0 or xt.shape[0] == 0:
        raise ValueError("recall needs at least one image and one text")
    ks = sorted({int(k) for k in ks})
    kmax = ks[-1]
    score = score_fn
    if score_fn is None:  # cosine: normalise once, then plain dot products
        xi = xi / xi.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        xt = xt / xt.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        score = _dot
    assert score is not None
    n_img, n_txt = xi.shape[0], xt.shape[0]
    rows = _tiles(n_img, min(chunk, MAX_SCORE_ELEMENTS))
    cols = _tiles(n_txt, MAX_SCORE_ELEMENTS // max(1, rows[0][1] - rows[0][0]))
    i2t = {k: 0 for k in ks}
    t2i_top: list[TopK | None] = [None] * len(cols)  # running top images of each text tile
    for r0, r1 in tqdm(rows, desc="recall", disable=not progress, leave=False):
        q = xi[r0:r1]
        best: TopK | None = None  # running top texts of this image block
        for j, (c0, c1) in enumerate(cols):
            s = score(q, xt[c0:c1])  # (images, texts)
            best = merge_topk(best, tile_topk(s, kmax, c0), kmax)
            for a, b in _slices(r0, r1):
                t2i_top[j] = _update_columns(t2i_top[j], s[a - r0 : b - r0], kmax, a)
            del s
        assert best is not None
        for k, h in _hits(best[1], gt, gi[r0:r1], ks).items():
            i2t[k] += h
    top_imgs = torch.cat([t[1] for t in t2i_top if t is not None], dim=0)
    t2i = _hits(top_imgs, gi, gt, ks)
    out = {f"i2t_r{k}": i2t[k] / n_img for k in ks}
    out.update({f"t2i_r{k}": t2i[k] / n_txt for k in ks})
    return out
