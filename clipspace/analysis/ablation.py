"""Dimension ablation (docs/reference.md section 4): order dimensions by |mean_img - mean_txt| on
the normalised embeddings, drop the top k (k = 0..20) from both modalities, re-normalise, recompute
the gap and a performance metric given by a callback (e.g. retrieval R@1 or zero-shot accuracy)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from clipspace.analysis._arrays import ArrayLike, normalize_rows, to_tensor
from clipspace.analysis.gap import gap_stats, mean_difference

MetricFn = Callable[[Tensor, Tensor], float | dict[str, float]]


def dimension_order(img: ArrayLike, txt: ArrayLike) -> Tensor:
    """Dimension indices sorted by decreasing |mean(img) - mean(txt)| (normalised embeddings)."""
    diff = mean_difference(img, txt).abs()
    return torch.argsort(diff, descending=True, stable=True)


def drop_dims(x: Tensor, dims: Tensor) -> Tensor:
    """Remove columns ``dims`` and L2-normalise the rows again."""
    keep = torch.ones(x.shape[1], dtype=torch.bool)
    keep[dims] = False
    return normalize_rows(x[:, keep])


def ablate_dims(
    img: ArrayLike,
    txt: ArrayLike,
    ks: Iterable[int] = range(21),
    metric_fn: MetricFn | None = None,
) -> dict[str, list]:
    """Ablation curve: for each k, gap metrics (l2m, l2i, rmg) and ``metric_fn(img_k, txt_k)``
    on the reduced, re-normalised embeddings. Returns ``{"k": [...], "dims": [...], "l2m": [...],
    ..., <metric names>: [...]}`` (``dims`` = the removed dimensions, in order)."""
    xi = normalize_rows(to_tensor(img))
    xt = normalize_rows(to_tensor(txt))
    order = dimension_order(xi, xt)
    ks = [int(k) for k in ks if 0 <= int(k) < xi.shape[1]]
    out: dict[str, list] = {"k": ks, "dims": order[: max(ks, default=0)].tolist()}
    for k in ks:
        a, b = drop_dims(xi, order[:k]), drop_dims(xt, order[:k])
        g = gap_stats(a, b)
        for name in ("l2m", "l2i", "rmg"):
            out.setdefault(name, []).append(g[name])
        if metric_fn is not None:
            m = metric_fn(a, b)
            if not isinstance(m, dict):
                m = {"metric": float(m)}
            for name, v in m.items():
                out.setdefault(name, []).append(float(v))
    return out
