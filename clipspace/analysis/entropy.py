"""Logit entropy and alignment / uniformity of paired embeddings.

- Per-sample logit entropy (Two Effects, One Trigger, Sec. 6.2): for row i of an (N, M) logit
  matrix, H_i = -sum_j p_ij log p_ij with p_i = softmax(logits_i); 0 when one caption takes all
  the mass, log M when the logits are flat. ``logit_entropy`` returns H (nats) per row.
- Alignment and uniformity (Wang & Isola, ICML 2020) of L2-normalised pairs (x_i, y_i):
  align = mean_i |x_i - y_i|^2, uniform = log mean_{i != j} exp(-t |x_i - x_j|^2), t = 2, per
  modality. Lower is better for both.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from clipspace.analysis._arrays import ArrayLike, normalize_rows, to_tensor
from clipspace.analysis.gap import gap_stats


def logit_entropy(logits: Tensor) -> Tensor:
    """(N,) entropy in nats of softmax over each row of (N, M) ``logits`` (finite for any
    finite input: log_softmax, and 0 log 0 = 0)."""
    logp = torch.log_softmax(logits.detach().float(), dim=-1)
    plogp = torch.where(torch.isfinite(logp), logp.exp() * logp, 0.0)  # p = 0: log p = -inf
    return (-plogp.sum(-1)).clamp_min(0.0) + 0.0  # no -0.0


def entropy_stats(logits: Tensor) -> dict[str, float]:
    """Mean per-sample entropy of image->text rows and text->image rows of a square logit
    matrix (``logits[i, j]``: image i, text j), and the same divided by log N."""
    n = logits.shape[0]
    h_i2t = float(logit_entropy(logits).mean())
    h_t2i = float(logit_entropy(logits.T).mean())
    log_n = math.log(n) if n > 1 else 1.0
    return {"entropy_i2t": h_i2t, "entropy_t2i": h_t2i,
            "entropy": (h_i2t + h_t2i) / 2, "entropy_rel": (h_i2t + h_t2i) / (2 * log_n)}


def _uniformity(x: Tensor, t: float) -> float:
    n = x.shape[0]
    sq = (2.0 - 2.0 * (x @ x.T)).clamp_min(0.0)
    off = ~torch.eye(n, dtype=torch.bool)
    return float(torch.logsumexp(-t * sq[off], dim=0) - math.log(n * (n - 1)))


def alignment_uniformity(img: ArrayLike, txt: ArrayLike, t: float = 2.0) -> dict[str, float]:
    """``alignment`` of matched pairs and ``uniformity_image`` / ``uniformity_text`` (and their
    mean ``uniformity``) of L2-normalised rows; O(N^2) memory, for subsets of a few thousand."""
    x = normalize_rows(to_tensor(img).double())
    y = normalize_rows(to_tensor(txt).double())
    if x.shape != y.shape or x.shape[0] < 2:
        raise ValueError(f"need two (N, D) sets with N >= 2, got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    align = float(((x - y) ** 2).sum(1).mean())
    ui, ut = _uniformity(x, t), _uniformity(y, t)
    return {"alignment": align, "uniformity_image": ui, "uniformity_text": ut,
            "uniformity": (ui + ut) / 2}


def dynamics_stats(img: Tensor, txt: Tensor, logits: Tensor) -> dict[str, float]:
    """What Two Effects (Fig. 7b in Sec. 6.1; entropy, Sec. 6.2) follows during training, from
    one set of pairs and their (N, N) training logits (``ClipModel.logits``): L2M, RMG (and the
    rest of ``gap_stats``), logit entropy, alignment and uniformity."""
    return {**gap_stats(img, txt), **entropy_stats(logits), **alignment_uniformity(img, txt)}


__all__ = ["alignment_uniformity", "dynamics_stats", "entropy_stats", "logit_entropy"]
