"""Pairwise logit matrices M(x, y) for contrastive losses (docs/reference.md section 2).

Every kind is built from one Gram-type matrix (O(B1 B2) memory, never B1 x B2 x D) and is
computed in float32 (float64 kept) with autocast disabled, whatever the input dtype (the
geometry layer's ``geometry_fn`` guard, shared by every loss).
"""

from __future__ import annotations

from types import ModuleType

import torch.nn.functional as F
from torch import Tensor

from clipspace.geometry import geometry_fn

LOGIT_KINDS: tuple[str, ...] = ("cosine", "dot", "inner", "neg_dist", "neg_sqdist")

#: cosine logits normalise with this eps: norms down to ~1e-6 normalise exactly, the zero
#: vector maps to zero (finite gradient).
NORMALIZE_EPS = 1e-12


@geometry_fn
def pairwise_logits(
    kind: str, x: Tensor, y: Tensor, geometry: ModuleType, curv: float | Tensor = 1.0
) -> Tensor:
    """Un-scaled logits M(x_i, y_j), shape (B1, B2).

    cosine: <x/|x|, y/|y|>;  dot: <x, y>;  inner: geometry.pairwise_inner (<,>_L on Lorentz);
    neg_dist: -geometry.pairwise_dist (sphere: -geodesic acos);  neg_sqdist: -pairwise_sqdist.
    """
    if kind not in LOGIT_KINDS:
        raise ValueError(f"unknown logit kind {kind!r}; allowed: {', '.join(LOGIT_KINDS)}")
    if kind == "cosine":
        x = F.normalize(x, dim=-1, eps=NORMALIZE_EPS)
        y = F.normalize(y, dim=-1, eps=NORMALIZE_EPS)
        return x @ y.transpose(-1, -2)
    if kind == "dot":
        return x @ y.transpose(-1, -2)
    if kind == "inner":
        return geometry.pairwise_inner(x, y, curv)
    if kind == "neg_dist":
        return -geometry.pairwise_dist(x, y, curv)
    return -geometry.pairwise_sqdist(x, y, curv)
