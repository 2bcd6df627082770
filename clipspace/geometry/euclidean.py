"""Euclidean geometry (EuCLIP; the origin O is the [ROOT]). docs/reference.md section 1.

Points are plain vectors in R^D; ``curv`` is accepted and ignored everywhere.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._numerics import (
    geometry_fn,
    safe_acos,
    safe_asin,
    safe_inv_norm,
    safe_norm,
    safe_normalize,
    safe_sqrt,
    sq_norm,
)
from ._pairwise_angle import EuclideanExtAngle

HAS_ORIGIN: bool = True

Curv = float | Tensor


@geometry_fn
def exp_map0(v: Tensor, curv: Curv = 1.0) -> Tensor:
    """Identity (the tangent space at O is the space itself)."""
    return v


@geometry_fn
def log_map0(x: Tensor, curv: Curv = 1.0) -> Tensor:
    """Identity."""
    return x


@geometry_fn
def pairwise_inner(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """Dot products x_i . y_j, (B1, B2)."""
    return x @ y.transpose(-1, -2)


def _pairwise_sqdist(x: Tensor, y: Tensor) -> Tensor:
    """|x|^2 - 2 x.y + |y|^2 from one Gram matrix, clamped >= 0."""
    gram = x @ y.transpose(-1, -2)
    return (sq_norm(x)[..., :, None] - 2.0 * gram + sq_norm(y)[..., None, :]).clamp_min(0.0)


@geometry_fn
def pairwise_sqdist(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """|x_i - y_j|^2 = |x_i|^2 - 2 x_i.y_j + |y_j|^2 (Gram matrix, clamped >= 0)."""
    return _pairwise_sqdist(x, y)


@geometry_fn
def pairwise_dist(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """|x_i - y_j| (safe sqrt of the Gram-matrix squared distance)."""
    return safe_sqrt(_pairwise_sqdist(x, y))


@geometry_fn
def dist(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """Row-wise |x - y|."""
    return safe_norm(x - y)


@geometry_fn
def dist_to_origin(x: Tensor, curv: Curv = 1.0) -> Tensor:
    """|x|."""
    return safe_norm(x)


@geometry_fn
def half_aperture(x: Tensor, curv: Curv = 1.0, min_radius: float = 0.1) -> Tensor:
    """Entailment-cone half-aperture asin(min(1, K / |x|)), K = min_radius (Ganea et al. 2018)."""
    return safe_asin(min_radius / safe_norm(x))


def _ext_from(root: Tensor, x: Tensor, y: Tensor) -> Tensor:
    cos = (safe_normalize(x - root) * safe_normalize(y - x)).sum(-1)
    return safe_acos(cos)


@geometry_fn
def ext_angle(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """Exterior angle at x of triangle O-x-y: acos((y - x).x / (|y - x| |x|)), row-wise."""
    return _ext_from(torch.zeros_like(x), x, y)


@geometry_fn
def pairwise_ext_angle(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """ext_angle(x_i, y_j) as (B1, B2), from one Gram matrix G:

    cos_ij = (G_ij / |x_i| - |x_i|) / |y_j - x_i|  (0 where |y_j - x_i| ~ 0),
    |y_j - x_i|^2 = |x_i|^2 - 2 G_ij + |y_j|^2. The B1 x B2 part is one fused autograd Function
    (``_pairwise_angle.EuclideanExtAngle``: saves only G, analytic backward; 2 matmuls in all).
    """
    gram = x @ y.transpose(-1, -2)
    nx2, ny2 = sq_norm(x, keepdim=True), sq_norm(y).unsqueeze(-2)
    inv, nx = safe_inv_norm(x, keepdim=True), safe_sqrt(nx2)
    return EuclideanExtAngle.apply(gram, nx2, ny2, inv, nx)


@geometry_fn
def midpoint(x: Tensor, curv: Curv = 1.0) -> Tensor:
    """Mean of the points over dim -2: (..., N, D) -> (..., D)."""
    return x.mean(dim=-2)


@geometry_fn
def ext_angle_from(root: Tensor, x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """Exterior angle at x of triangle root-x-y (Radial Embedding's Xi_r), row-wise:

    Xi_r(x, y) = acos((x - r).(y - x) / (|x - r| |y - x|)) = pi - angle(r, x, y).
    ``root`` broadcasts against x (e.g. shape (D,)).
    """
    return _ext_from(root, x, y)


@geometry_fn
def default_root(points: Tensor, curv: Curv = 1.0) -> Tensor:
    """The origin: zeros of shape (D,)."""
    return torch.zeros(points.shape[-1], dtype=points.dtype, device=points.device)
