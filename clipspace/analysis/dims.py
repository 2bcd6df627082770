"""The per-dimension view of the modality gap (Two Effects, One Trigger, Sec. 4, Fig. 4a/b and
the appendix's mean-difference ranking).

On L2-normalised embeddings:

- per-dimension means m_img[d] = mean_i img_i[d], m_txt[d] = mean_i txt_i[d] (Fig. 4a plots
  their difference, sorted);
- the paper's pair of dimensions (Fig. 4b): argmax_d m_img[d] and argmax_d m_txt[d] (the
  largest mean of each modality; the next largest text dimension when both are the same);
- how well a few dimensions alone separate the modalities: a nearest-mean rule on those
  dimensions, predict "image" iff (x - (mu_img + mu_txt) / 2) . (mu_img - mu_txt) > 0, fitted on
  one half of the rows (even / odd row index) and scored on the other, both ways (2-fold);
  accuracy over all 2N held-out points, a tie counting 1/2; chance is 0.5. The same rule on
  two random dimensions (``draws`` seeded draws) is the baseline;
- the ranking by |m_img - m_txt| (``ablation.dimension_order``) and the share of the squared gap
  carried by its top k dimensions, S_k = sum_{top k} diff_d^2 / |diff|^2 (k / D if the gap were
  spread evenly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from clipspace.analysis._arrays import ArrayLike, normalize_rows, to_tensor
from clipspace.analysis.ablation import dimension_order

SHARE_KS = (1, 2, 5, 10)


def modality_means(img: ArrayLike, txt: ArrayLike) -> tuple[Tensor, Tensor]:
    """Per-dimension means (D,) of the L2-normalised image and text rows, float64."""
    xi = normalize_rows(to_tensor(img).double())
    xt = normalize_rows(to_tensor(txt).double())
    return xi.mean(0), xt.mean(0)


def top_mean_dims(mean_img: Tensor, mean_txt: Tensor) -> list[int]:
    """The paper's pair (Fig. 4b): the dimension of largest image mean, then that of largest
    text mean (the text's second largest when it is the image's dimension)."""
    d_img = int(torch.argmax(mean_img))
    order = torch.argsort(mean_txt, descending=True, stable=True).tolist()
    d_txt = next(d for d in order if d != d_img) if len(order) > 1 else d_img
    return [d_img, d_txt]


def top_k_per_modality(mean_img: Tensor, mean_txt: Tensor, k: int = 2) -> list[int]:
    """The ``k`` largest-mean dimensions of each modality, together, without repeats."""
    dims: list[int] = []
    for m in (mean_img, mean_txt):
        for d in torch.argsort(m, descending=True, stable=True)[:k].tolist():
            if d not in dims:
                dims.append(d)
    return dims


def _nearest_mean_correct(train_i: Tensor, train_t: Tensor, test_i: Tensor, test_t: Tensor
                          ) -> float:
    """Correct predictions (ties = 1/2) of the nearest-mean rule fitted on the train rows."""
    mu_i, mu_t = train_i.mean(0), train_t.mean(0)
    w, mid = mu_i - mu_t, (mu_i + mu_t) / 2
    s_i, s_t = (test_i - mid) @ w, (test_t - mid) @ w
    return float((s_i > 0).sum() + (s_t < 0).sum() + 0.5 * ((s_i == 0).sum() + (s_t == 0).sum()))


def separation_accuracy(img: ArrayLike, txt: ArrayLike, dims: Sequence[int]) -> float:
    """2-fold accuracy of telling image from text points by the nearest-mean rule on the
    normalised rows' columns ``dims`` (module docstring); 0.5 is chance."""
    xi = normalize_rows(to_tensor(img).double())[:, list(dims)]
    xt = normalize_rows(to_tensor(txt).double())[:, list(dims)]
    if xi.shape[0] < 2 or xt.shape[0] < 2:
        raise ValueError("separation_accuracy needs at least 2 rows per modality")
    correct = 0.0
    for a in (0, 1):
        b = 1 - a
        correct += _nearest_mean_correct(xi[a::2], xt[a::2], xi[b::2], xt[b::2])
    return correct / (xi.shape[0] + xt.shape[0])


def random_dims_accuracy(img: ArrayLike, txt: ArrayLike, n_dims: int = 2, draws: int = 20,
                         seed: int = 0) -> dict[str, float]:
    """Mean and std of ``separation_accuracy`` over ``draws`` seeded random sets of ``n_dims``
    distinct dimensions (the baseline for the paper's pair)."""
    d = int(img.shape[1])
    rng = np.random.default_rng(seed)
    accs = [separation_accuracy(img, txt, rng.choice(d, min(n_dims, d), replace=False).tolist())
            for _ in range(max(1, draws))]
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "draws": len(accs)}


def gap_share(diff: Tensor, ks: Sequence[int] = SHARE_KS) -> dict[str, float]:
    """S_k = (sum of the k largest diff_d^2) / |diff|^2 for each k <= D (0 when diff = 0)."""
    sq = torch.sort(diff.double() ** 2, descending=True).values
    total = float(sq.sum())
    return {str(k): (float(sq[:k].sum()) / total if total > 0 else 0.0)
            for k in ks if k <= len(sq)}


def dims_analysis(img: ArrayLike, txt: ArrayLike, top: int = 10, draws: int = 20,
                  seed: int = 0) -> dict[str, Any]:
    """The per-dimension view as a dict: ``mean_image`` / ``mean_text`` (D,), ``pair`` (the
    paper's two dimensions) with their means, ``separation`` (accuracy of the nearest-mean rule
    on ``pair``, on the top-2 dimensions of each modality, on the top-2 by |difference|, on 2
    random dimensions), ``ranking`` (the ``top`` dimensions by |m_img - m_txt|) and ``gap_share``
    (S_k, with ``uniform_share`` = k / D for comparison)."""
    m_img, m_txt = modality_means(img, txt)
    diff = m_img - m_txt
    pair = top_mean_dims(m_img, m_txt)
    order = dimension_order(img, txt).tolist()
    per_mod = top_k_per_modality(m_img, m_txt, 2)
    dim = int(m_img.shape[0])
    return {
        "mean_image": m_img.tolist(),
        "mean_text": m_txt.tolist(),
        "pair": pair,
        "pair_means": {"image": [float(m_img[d]) for d in pair],
                       "text": [float(m_txt[d]) for d in pair]},
        "top_per_modality": per_mod,
        "separation": {
            "pair": separation_accuracy(img, txt, pair),
            "top_per_modality": separation_accuracy(img, txt, per_mod),
            "top_difference": separation_accuracy(img, txt, order[:2]),
            "random": random_dims_accuracy(img, txt, 2, draws, seed),
            "all": separation_accuracy(img, txt, list(range(dim))),
        },
        "ranking": [{"dim": d, "difference": float(diff[d])} for d in order[:top]],
        "gap_share": gap_share(diff),
        "uniform_share": {str(k): k / dim for k in SHARE_KS if k <= dim},
    }


__all__ = [
    "dims_analysis",
    "gap_share",
    "modality_means",
    "random_dims_accuracy",
    "separation_accuracy",
    "top_k_per_modality",
    "top_mean_dims",
]
