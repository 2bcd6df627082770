"""Modality gap metrics in closed form, O(N D) time and O(chunk D) memory
(docs/reference.md section 4).

All metrics use L2-normalised embeddings (``normalize=True``); row i of ``img`` matches row i of
``txt``.

- L2M = |mean(img) - mean(txt)|
- L2I = mean_i |img_i - txt_i|   (|a - b| = sqrt(|a|^2 + |b|^2 - 2 a.b), clamped >= 0)
- RMG = M / (M + (D_img + D_txt) / 2), d(a, b) = (1 - cos(a, b)) / 2, M = mean_i d(img_i, txt_i),
  D_X = mean over ordered pairs i != j of d(x_i, x_j). For unit vectors
  sum_{i != j} cos(x_i, x_j) = |sum_i x_i|^2 - n, so D_X = (1 - (|S|^2 - n) / (n (n - 1))) / 2.

Each chunk is read by a few einsum row-dots and two mat-vecs (sum of normalised rows = (1/|x|) @ x),
so no temporary of the chunk's size is ever allocated.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np
import torch

from clipspace.analysis._arrays import (
    DEFAULT_CHUNK,
    ArrayLike,
    inv_norms,
    n_rows,
    normalize_rows,
    safe_chunks,
    to_tensor,
)
from clipspace.eval.hierarchy import root_distance


def _weights(sq: np.ndarray, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    """(row weights, squared norms of the weighted rows): 1 / |x| and 1 when normalising."""
    if normalize:
        return inv_norms(sq), np.ones(len(sq))
    return np.ones(len(sq)), sq


def _ratio(num: float, den: float) -> float:
    """num / den; 0 when both are 0 (no gap, no spread); NaN (never a wrong 0) for NaN input."""
    if den > 0:
        return num / den
    return 0.0 if den == 0 else math.nan


def gap_stats(
    img: ArrayLike, txt: ArrayLike, normalize: bool = True, chunk: int = DEFAULT_CHUNK
) -> dict[str, float]:
    """One pass over both modalities: ``l2m``, ``l2i``, ``rmg`` and the pieces of RMG
    (``rmg_matched`` = M, ``rmg_img`` = D_img, ``rmg_txt`` = D_txt, ``mean_cos_matched``).
    With ``normalize=False`` the raw vectors are used (d uses dot products, not cosines).
    NaN / Inf input gives NaN (``run_analysis`` rejects it first, naming the rows)."""
    n = n_rows(img)
    if n_rows(txt) != n:
        raise ValueError(f"image ({n}) and text ({n_rows(txt)}) row counts differ")
    if n < 2:
        raise ValueError("need at least 2 pairs")
    d = int(img.shape[1])
    sum_i = np.zeros(d, np.float64)
    sum_t = np.zeros(d, np.float64)
    cos_m = l2i = sq_i = sq_t = 0.0
    for (_, xi, si), (_, xt, st) in zip(safe_chunks(img, chunk), safe_chunks(txt, chunk),
                                        strict=True):
        if xi.shape != xt.shape:
            raise ValueError(f"image and text chunks differ in shape: {xi.shape} vs {xt.shape}")
        (wi, a2), (wt, b2) = _weights(si, normalize), _weights(st, normalize)
        dot = np.einsum("ij,ij->i", xi, xt).astype(np.float64) * wi * wt
        sum_i += (wi.astype(xi.dtype) @ xi).astype(np.float64)
        sum_t += (wt.astype(xt.dtype) @ xt).astype(np.float64)
        cos_m += float(dot.sum())
        l2i += float(np.sqrt(np.maximum(a2 + b2 - 2.0 * dot, 0.0)).sum())
        sq_i += float(a2.sum())
        sq_t += float(b2.sum())
    pairs = n * (n - 1)
    m = (1.0 - cos_m / n) / 2.0
    d_img = (1.0 - (float(sum_i @ sum_i) - sq_i) / pairs) / 2.0
    d_txt = (1.0 - (float(sum_t @ sum_t) - sq_t) / pairs) / 2.0
    return {
        "l2m": float(np.linalg.norm(sum_i / n - sum_t / n)),
        "l2i": l2i / n,
        "rmg": _ratio(m, m + (d_img + d_txt) / 2.0),
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


def normalized_mean(x: ArrayLike, normalize: bool = True, chunk: int = DEFAULT_CHUNK
                    ) -> np.ndarray:
    """mean_i x_i / |x_i| (D,), float64."""
    s = np.zeros(int(x.shape[1]), np.float64)
    for _, b, sq in safe_chunks(x, chunk):
        w = _weights(sq, normalize)[0]
        s += (w.astype(b.dtype) @ b).astype(np.float64)
    return s / n_rows(x)


def mean_difference(img: ArrayLike, txt: ArrayLike, normalize: bool = True,
                    chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Per-dimension mean(img) - mean(txt) (D,), float64."""
    return torch.from_numpy(normalized_mean(img, normalize, chunk) -
                            normalized_mean(txt, normalize, chunk))


def _points(x: ArrayLike, geometry: ModuleType) -> torch.Tensor:
    """``x`` as a float tensor; on the sphere (no origin, scale-free) as unit vectors, so rows
    at any scale (1e30 included) are the same points."""
    t = to_tensor(x)
    return t if geometry.HAS_ORIGIN else normalize_rows(t)


def root_distances(
    img: ArrayLike, txt: ArrayLike, geometry: ModuleType, curv: float | torch.Tensor = 1.0
) -> dict[str, np.ndarray]:
    """Distance of every image and text point to one shared [ROOT] in the geometry's own
    metric: ``geometry.default_root`` of both sets together (the origin in Euclidean and
    Lorentz space, the normalised mean direction on the sphere; docs/reference.md section 0)."""
    xi, xt = _points(img, geometry), _points(txt, geometry)
    root = geometry.default_root(torch.cat([xi, xt]), curv)
    return {"image": root_distance(xi, geometry, curv, root).numpy(),
            "text": root_distance(xt, geometry, curv, root).numpy()}


def paper_root_distances(
    img: ArrayLike, txt: ArrayLike, geometry: ModuleType, curv: float | torch.Tensor = 1.0,
    scale: float = 1.0,
) -> dict[str, np.ndarray]:
    """Distance to [ROOT] with the roots of the EuCLIP paper (Chou and Alam 2024, Fig. 2 and 4).

    - sphere (CLIP): the scaled cosine distance rho(x) = s (1 - cos(x, r)), r = the normalised
      mean of all L2-normalised image and text embeddings together, s = ``scale`` (pass the
      model's logit scale to measure it in logit units; our reading of "scaled");
    - Euclidean (EuCLIP) and Lorentz (MERU): the geodesic distance to the origin,
      rho(x) = |x| and asinh(sqrt(c) |x|) / sqrt(c) (``root_distances``; ``scale`` unused).
    Returns {"image": (N,), "text": (M,)} as float arrays."""
    if geometry.HAS_ORIGIN:
        return root_distances(img, txt, geometry, curv)
    xi, xt = _points(img, geometry), _points(txt, geometry)
    root = normalize_rows(torch.cat([xi, xt]).double().mean(dim=0, keepdim=True))[0]
    return {name: (float(scale) * (1.0 - x.double() @ root)).numpy()
            for name, x in (("image", xi), ("text", xt))}


def _mean_pairwise(x: torch.Tensor, geometry: ModuleType, curv: Any, chunk: int = 1024) -> float:
    """mean over ordered pairs i != j of the geometry's distance d(x_i, x_j)."""
    n, total = x.shape[0], 0.0
    for s in range(0, n, chunk):
        block = geometry.pairwise_dist(x[s : s + chunk], x, curv).double()
        rows = torch.arange(s, min(s + chunk, n))
        block[rows - s, rows] = 0.0  # d(x_i, x_i) is 0 up to rounding: drop it exactly
        total += float(block.sum())
    return total / (n * (n - 1))


def geometric_gap(
    img: ArrayLike, txt: ArrayLike, geometry: ModuleType, curv: float | torch.Tensor = 1.0,
    max_rows: int = 8192, seed: int = 0,
) -> dict[str, Any]:
    """The gap measured with the geometry's own distance d (geodesic on the sphere and in the
    Lorentz model, Euclidean distance in Euclidean space), next to the paper's cosine figures:

    - ``geodesic_l2m`` = d(midpoint(img), midpoint(txt)) (the geometry's midpoint: normalised
      mean on the sphere, mean in Euclidean space, Einstein midpoint in Lorentz space);
    - ``geodesic_l2i`` = mean_i d(img_i, txt_i);
    - ``geodesic_rmg`` = M / (M + (D_img + D_txt) / 2), M = ``geodesic_l2i``, D_X the mean
      distance between two points of modality X (pairs of a seeded random subset of
      ``max_rows`` rows when N is larger: O(max_rows^2) time, O(1024 max_rows) memory).
    """
    xi, xt = _points(img, geometry), _points(txt, geometry)
    if xi.shape != xt.shape or xi.shape[0] < 2:
        raise ValueError(f"need two equal-shaped sets of >= 2 points, got {tuple(xi.shape)} "
                         f"and {tuple(xt.shape)}")
    mi, mt = geometry.midpoint(xi, curv), geometry.midpoint(xt, curv)
    matched = float(geometry.dist(xi, xt, curv).double().mean())
    if xi.shape[0] > max_rows:
        pick = torch.from_numpy(np.random.default_rng(seed).choice(xi.shape[0], max_rows,
                                                                   replace=False))
        xi, xt = xi[pick], xt[pick]
    d_img, d_txt = _mean_pairwise(xi, geometry, curv), _mean_pairwise(xt, geometry, curv)
    return {
        "geometry": geometry.__name__.rsplit(".", 1)[-1],
        "geodesic_l2m": float(geometry.dist(mi[None], mt[None], curv)[0]),
        "geodesic_l2i": matched,
        "geodesic_rmg": _ratio(matched, matched + (d_img + d_txt) / 2.0),
        "geodesic_img_spread": d_img,
        "geodesic_txt_spread": d_txt,
    }
