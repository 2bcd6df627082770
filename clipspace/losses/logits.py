"""Pairwise logit matrices M(x, y) for contrastive losses (REFERENCE section 2).

Every kind is built from one Gram-type matrix (O(B1 B2) memory, never B1 x B2 x D) and is
computed in float32 (float64 kept) with autocast disabled, whatever the input dtype.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor

LOGIT_KINDS: tuple[str, ...] = ("cosine", "dot", "inner", "neg_dist", "neg_sqdist")

#: cosine logits normalise with this eps: norms down to ~1e-6 normalise exactly, the zero
#: vector maps to zero (finite gradient).
NORMALIZE_EPS = 1e-12


def as_float(x: Tensor) -> Tensor:
    """Cast fp16/bf16 to float32; keep float32/float64 as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def as_float_curv(curv: float | Tensor) -> float | Tensor:
    """Curvature cast like :func:`as_float` when it is a tensor."""
    return as_float(curv) if isinstance(curv, Tensor) else curv


@contextlib.contextmanager
def no_autocast(device_type: str = "cpu") -> Iterator[None]:
    """Disable autocast on CPU and (if present) CUDA for the enclosed block."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.autocast(device_type="cpu", enabled=False))
        if torch.cuda.is_available():
            stack.enter_context(torch.autocast(device_type="cuda", enabled=False))
        if device_type not in ("cpu", "cuda"):
            stack.enter_context(torch.autocast(device_type=device_type, enabled=False))
        yield


def pairwise_logits(
    kind: str, x: Tensor, y: Tensor, geometry: ModuleType, curv: float | Tensor = 1.0
) -> Tensor:
    """Un-scaled logits M(x_i, y_j), shape (B1, B2).

    cosine: <x/|x|, y/|y|>;  dot: <x, y>;  inner: geometry.pairwise_inner (<,>_L on Lorentz);
    neg_dist: -geometry.pairwise_dist (sphere: -geodesic acos);  neg_sqdist: -pairwise_sqdist.
    """
    if kind not in LOGIT_KINDS:
        raise ValueError(f"unknown logit kind {kind!r}; allowed: {', '.join(LOGIT_KINDS)}")
    x, y, curv = as_float(x), as_float(y), as_float_curv(curv)
    with no_autocast(x.device.type):
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
