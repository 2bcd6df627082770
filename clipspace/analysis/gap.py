"""Modality gap metrics in closed form, O(N D) time and O(chunk D) memory (REFERENCE.md section 4).

All metrics use L2-normalised embeddings (``normalize=True``); row i of ``img`` matches row i of
``txt``.

- L2M = |mean(img) - mean(txt)|
- L2I = mean_i |img_i - txt_i|
- RMG = M / (M + (D_img + D_txt) / 2), d(a, b) = (1 - cos(a, b)) / 2, M = mean_i d(img_i, txt_i),
  D_X = mean over ordered pairs i != j of d(x_i, x_j). For unit vectors
  sum_{i != j} cos(x_i, x_j) = |sum_i x_i|^2 - n, so D_X = (1 - (|S|^2 - n) / (n (n - 1))) / 2.
"""

from __future__ import annotations

import torch

from clipspace.analysis._arrays import DEFAULT_CHUNK, ArrayLike, chunks, n_rows, normalize_rows


def _prep(x: torch.Tensor, normalize: bool) -> torch.Tensor:
    return normalize_rows(x) if normalize else x


def gap_stats(
    img: ArrayLike, txt: ArrayLike, normalize: bool = True, chunk: int = DEFAULT_CHUNK
) -> dict[str, float]:
    """One pass over both modalities: ``l2m``, ``l2i``, ``rmg`` and the pieces of RMG
    (``rmg_matched`` = M, ``rmg_img`` = D_img, ``rmg_txt`` = D_txt, ``mean_cos_matched``)."""
    n = n_rows(img)
    if n_rows(txt) != n:
        raise ValueError(f"image ({n}) and text ({n_rows(txt)}) row counts differ")
    if n < 2:
        raise ValueError("need at least 2 pairs")
    sum_i = sum_t = None
    cos_m = 0.0
    l2i = 0.0
    sq_i = sq_t = 0.0  # sum |x|^2 (n for unit vectors; kept general when normalize=False)
    for (_, xi), (_, xt) in zip(chunks(img, chunk), chunks(txt, chunk), strict=True):
        xi = _prep(xi, normalize)
        xt = _prep(xt, normalize)
        si = xi.sum(0, dtype=torch.float64)
        st = xt.sum(0, dtype=torch.float64)
        sum_i = si if sum_i is None else sum_i + si
        sum_t = st if sum_t is None else sum_t + st
        cos_m += float((xi * xt).sum(dtype=torch.float64))
        l2i += float((xi - xt).norm(dim=1).sum(dtype=torch.float64))
        sq_i += float(xi.pow(2).sum(dtype=torch.float64))
        sq_t += float(xt.pow(2).sum(dtype=torch.float64))
    assert sum_i is not None and sum_t is not None
    l2m = float((sum_i / n - sum_t / n).norm())
    pairs = n * (n - 1)
    cos_ii = (float(sum_i.dot(sum_i)) - sq_i) / pairs
    cos_tt = (float(sum_t.dot(sum_t)) - sq_t) / pairs
    m = (1.0 - cos_m / n) / 2.0
    d_img = (1.0 - cos_ii) / 2.0
    d_txt = (1.0 - cos_tt) / 2.0
    denom = m + (d_img + d_txt) / 2.0
    rmg = m / denom if denom > 0 else 0.0
    return {
        "l2m": l2m,
        "l2i": l2i / n,
        "rmg": rmg,
        "rmg_matched": m,
        "rmg_img": d_img,
        "rmg_txt": d_txt,
        "mean_cos_matched": cos_m / n,
    }


def l2m(img: ArrayLike, txt: ArrayLike, normalize: bool = True) -> float:
    """|mean(img) - mean(txt)|."""
    return gap_stats(img, txt, normalize)["l2m"]


def l2i(img: ArrayLike, txt: ArrayLike, normalize: bool = True) -> float:
    """mean_i |img_i - txt_i|."""
    return gap_stats(img, txt, normalize)["l2i"]


def rmg(img: ArrayLike, txt: ArrayLike, normalize: bool = True) -> float:
    """Relative modality gap M / (M + (D_img + D_txt) / 2)."""
    return gap_stats(img, txt, normalize)["rmg"]


def mean_difference(img: ArrayLike, txt: ArrayLike, normalize: bool = True,
                    chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Per-dimension mean(img) - mean(txt) (D,), float64."""
    out = []
    for x in (img, txt):
        s = None
        for _, c in chunks(x, chunk):
            c = _prep(c, normalize).sum(0, dtype=torch.float64)
            s = c if s is None else s + c
        assert s is not None
        out.append(s / n_rows(x))
    return out[0] - out[1]
