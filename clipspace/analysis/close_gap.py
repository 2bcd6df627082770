"""Closing the modality gap post hoc (Two Effects, One Trigger, Sec. 4, Fig. 4c and Table 5, and
the methods it cites). Each method maps L2-normalised image rows x_i and text rows t_i to new
unit rows; ``close_gap`` measures L2M, RMG and a performance callback before and after.

- ``drop`` (Fig. 4c): remove the k dimensions of largest |mean(x) - mean(t)| from both
  modalities and re-normalise (``ablation.dimension_order`` / ``ablation.drop_dims``).
- ``shift`` (Liang et al. 2022, "Mind the Gap", Sec. 4.2): with the gap vector
  g = mean(t) - mean(x), x_i' = x_i + g / 2, t_i' = t_i - g / 2 (L2M = 0 exactly before the
  re-normalisation), then re-normalise.
- ``ideal-words`` (Trager et al. 2023, "Linear Spaces of Meanings", ICCV, Sec. 3; used by the
  Two Effects paper, Table 5): for factors Z = Z_1 x ... x Z_K (the object and attribute labels)
  and the mean embedding u_z of each observed combination z, the ideal words of one modality are
  u_0 = mean_z u_z and u_{i, v} = mean_{z : z_i = v} u_z - u_0, so that u_z ~ u_0 + sum_i
  u_{i, z_i}. u_0 is the modality's meaning-free constant term; the method removes it:
  x_i' = x_i - u_0^img, t_i' = t_i - u_0^txt, then re-normalises. ``ideal_word_cosines`` gives the
  paper's Table 5 measure: the mean cosine between the image and the text ideal word of the same
  factor value, with u_0 kept (u_0 + u_{i, v}) and removed (u_{i, v}).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from clipspace.analysis._arrays import ArrayLike, dense_labels, normalize_rows, to_tensor
from clipspace.analysis.ablation import dimension_order, drop_dims
from clipspace.analysis.gap import gap_stats

METHODS = ("drop", "shift", "ideal-words")
GAP_KEYS = ("l2m", "rmg", "l2i")
MetricFn = Callable[[Tensor, Tensor], dict[str, float]]


def _unit(x: ArrayLike) -> Tensor:
    return normalize_rows(to_tensor(x).double())


def drop(img: ArrayLike, txt: ArrayLike, k: int) -> tuple[Tensor, Tensor]:
    """Both modalities without the ``k`` dimensions of largest |mean difference|,
    re-normalised (0 < k < D)."""
    xi, xt = _unit(img), _unit(txt)
    if not 0 < k < xi.shape[1]:
        raise ValueError(f"drop: k must be in 1..{xi.shape[1] - 1}, got {k}")
    dims = dimension_order(xi, xt)[:k]
    return drop_dims(xi, dims), drop_dims(xt, dims)


def shift(img: ArrayLike, txt: ArrayLike, renormalize: bool = True) -> tuple[Tensor, Tensor]:
    """Liang et al.: each modality moved by half the gap vector g = mean(t) - mean(x) towards
    the other (x + g / 2, t - g / 2), then re-normalised unless ``renormalize`` is False."""
    xi, xt = _unit(img), _unit(txt)
    g = xt.mean(0) - xi.mean(0)
    a, b = xi + g / 2, xt - g / 2
    return (normalize_rows(a), normalize_rows(b)) if renormalize else (a, b)


@dataclass
class IdealWords:
    """Ideal words of one modality: ``u0`` (D,) and ``words[key]`` (K_key, D), row j the word of
    ``values[key][j]``."""

    u0: Tensor
    words: dict[str, Tensor]
    values: dict[str, np.ndarray]


def ideal_words(x: ArrayLike, factors: Mapping[str, ArrayLike]) -> IdealWords:
    """Trager et al.'s ideal words of the unit rows of ``x`` for the label vectors ``factors``
    (module docstring): u_z = mean of the rows of combination z, u_0 = mean_z u_z,
    u_{i, v} = mean_{z : z_i = v} u_z - u_0 (over the observed combinations)."""
    if not factors:
        raise ValueError("ideal_words needs at least one factor (label vector)")
    xu = _unit(x)
    keys = list(factors)
    codes, values = zip(*(dense_labels(factors[k]) for k in keys), strict=True)
    grid = np.stack([c[0] for c in codes], axis=1)
    combos, inverse = np.unique(grid, axis=0, return_inverse=True)
    inv = torch.from_numpy(inverse.reshape(-1).astype(np.int64))
    counts = torch.bincount(inv, minlength=len(combos)).double()
    u_z = torch.zeros(len(combos), xu.shape[1], dtype=xu.dtype).index_add_(0, inv, xu)
    u_z = u_z / counts[:, None]
    u0 = u_z.mean(0)
    words = {}
    for j, k in enumerate(keys):
        zc = torch.from_numpy(combos[:, j].astype(np.int64))
        n_val = len(values[j])
        sums = torch.zeros(n_val, xu.shape[1], dtype=xu.dtype).index_add_(0, zc, u_z)
        words[k] = sums / torch.bincount(zc, minlength=n_val).double()[:, None] - u0
    return IdealWords(u0=u0, words=words, values=dict(zip(keys, values, strict=True)))


def ideal_shift(img: ArrayLike, txt: ArrayLike, factors: Mapping[str, ArrayLike]
                ) -> tuple[Tensor, Tensor]:
    """Each modality minus its own ideal-word constant u_0, re-normalised."""
    u_img, u_txt = ideal_words(img, factors).u0, ideal_words(txt, factors).u0
    return normalize_rows(_unit(img) - u_img), normalize_rows(_unit(txt) - u_txt)


def _mean_cos(a: Tensor, b: Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=1).mean())


def ideal_word_cosines(img: ArrayLike, txt: ArrayLike, factors: Mapping[str, ArrayLike]
                       ) -> dict[str, float]:
    """Table 5's gap measure: mean over every factor value of cos(image word, text word), with
    the constant kept (``with_u0``: u_0 + u_{i, v}) and removed (``without_u0``: u_{i, v})."""
    wi, wt = ideal_words(img, factors), ideal_words(txt, factors)
    a = torch.cat([wi.words[k] for k in factors])
    b = torch.cat([wt.words[k] for k in factors])
    return {"with_u0": _mean_cos(a + wi.u0, b + wt.u0), "without_u0": _mean_cos(a, b)}


def apply_method(method: str, img: ArrayLike, txt: ArrayLike, k: int = 5,
                 factors: Mapping[str, ArrayLike] | None = None) -> tuple[Tensor, Tensor]:
    """The embeddings after ``method`` (``METHODS``); ``k`` for drop, ``factors`` for
    ideal-words."""
    if method == "drop":
        return drop(img, txt, k)
    if method == "shift":
        return shift(img, txt)
    if method == "ideal-words":
        if not factors:
            raise ValueError("ideal-words needs factor labels (object and attributes)")
        return ideal_shift(img, txt, factors)
    raise ValueError(f"unknown gap-closing method {method!r}; choose from {list(METHODS)}")


def _measure(a: Tensor, b: Tensor, metric_fn: MetricFn | None) -> dict[str, float]:
    g = gap_stats(a, b)
    out = {name: float(g[name]) for name in GAP_KEYS}
    if metric_fn is not None:
        out.update({name: float(v) for name, v in metric_fn(a.float(), b.float()).items()})
    return out


def close_gap(img: ArrayLike, txt: ArrayLike, methods: Sequence[str] = METHODS, k: int = 5,
              factors: Mapping[str, ArrayLike] | None = None,
              metric_fn: MetricFn | None = None) -> dict[str, Any]:
    """``before`` (L2M, RMG, L2I and ``metric_fn``'s numbers on the unit rows) and, per method,
    ``after`` and ``change`` (after - before) of the same numbers; with ``factors`` also
    ``ideal_word_cos`` (Table 5's measure) before and after each method."""
    xi, xt = _unit(img), _unit(txt)
    before = _measure(xi, xt, metric_fn)
    out: dict[str, Any] = {"before": before, "methods": {}}
    if factors:
        out["ideal_word_cos"] = ideal_word_cosines(xi, xt, factors)
    for method in methods:
        a, b = apply_method(method, xi, xt, k, factors)
        after = _measure(a, b, metric_fn)
        res: dict[str, Any] = {"after": after,
                               "change": {n: after[n] - before[n] for n in after}}
        if method == "drop":
            res["k"] = k
        if factors:
            res["ideal_word_cos"] = ideal_word_cosines(a, b, factors)
        out["methods"][method] = res
    return out


__all__ = [
    "METHODS",
    "IdealWords",
    "apply_method",
    "close_gap",
    "drop",
    "ideal_shift",
    "ideal_word_cosines",
    "ideal_words",
    "shift",
]
