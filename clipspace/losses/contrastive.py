"""Contrastive losses on (already scaled) logit matrices: InfoNCE and SigLIP.

Both compute in float32 (float64 kept) with autocast disabled.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from clipspace.geometry import geometry_fn


def _default_labels(logits: Tensor) -> Tensor:
    return torch.arange(logits.shape[0], device=logits.device)


@geometry_fn
def infonce(
    logits_per_image: Tensor, labels: Tensor | None = None, logits_per_text: Tensor | None = None
) -> Tensor:
    """Symmetric InfoNCE (CLIP): (CE(L, labels) + CE(L_T, labels)) / 2.

    ``logits_per_image`` is (B, N): row i = image i against N texts; the positive of row i is
    column ``labels[i]`` (default arange(B)). ``logits_per_text`` (B, N) defaults to L^T (square
    case); pass it explicitly for distributed local-loss (local rows vs all gathered columns).
    """
    li = logits_per_image
    if labels is None:
        labels = _default_labels(li)
    lt = li.transpose(0, 1) if logits_per_text is None else logits_per_text
    return (F.cross_entropy(li, labels) + F.cross_entropy(lt, labels)) / 2


@geometry_fn
def siglip(
    logits: Tensor, bias: Tensor | float, labels: Tensor | None = None, positives: bool = True
) -> Tensor:
    """SigLIP sigmoid loss: -sum_{i,j} log sigmoid(y_ij z_ij) / B,  z = logits + bias.

    y_ij = +1 for the positive pair (column ``labels[i]``, default the diagonal), -1 otherwise;
    ``logits`` (B, N) are already multiplied by the logit scale; divided by the number of rows B
    as in the SigLIP paper. Computed as (sum_ij softplus(z_ij) - sum_i z_{i,labels_i}) / B.
    ``positives=False``: every pair is a negative (y = -1), sum_ij softplus(z_ij) / B, the blocks
    of another rank's texts in the ring exchange (``losses.ring``).
    """
    z = logits + bias
    # -log sigmoid(-z) = softplus(z); -log sigmoid(z) = softplus(z) - z: no sign matrix
    total = F.softplus(z).sum()
    if positives:
        if labels is None:
            labels = _default_labels(logits)
        total = total - z.gather(1, labels.view(-1, 1)).sum()
    return total / logits.shape[0]
