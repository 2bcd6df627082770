"""Unit sphere (CLIP). docs/reference.md sections 0-1.

Points are unit vectors; ``curv`` is ignored. The sphere has no origin on the manifold
(HAS_ORIGIN = False): angle functions use the Euclidean formulas in the ambient space (the
origin O there is the sphere's centre), and Radial Embedding passes an explicit root
(``default_root`` = normalised mean of the embeddings).
"""

from __future__ import annotations

from torch import Tensor

from . import euclidean as _euc
from ._numerics import geometry_fn, safe_acos, safe_norm, safe_normalize

HAS_ORIGIN: bool = False

Curv = float | Tensor


@geometry_fn
def exp_map0(v: Tensor, curv: Curv = 1.0) -> Tensor:
    """L2 normalisation v / |v| (the zero vector stays zero)."""
    return safe_normalize(v)


@geometry_fn
def log_map0(x: Tensor, curv: Curv = 1.0) -> Tensor:
    """Identity."""
    return x


@geometry_fn
def pairwise_inner(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """Dot products x_i . y_j (cosine similarity for unit vectors), (B1, B2)."""
    return x @ y.transpose(-1, -2)


@geometry_fn
def pairwise_dist(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """Geodesic distance acos(x_i . y_j) (inputs re-normalised; acos input clamped)."""
    return safe_acos(safe_normalize(x) @ safe_normalize(y).transpose(-1, -2))


@geometry_fn
def pairwise_sqdist(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """acos(x_i . y_j)^2."""
    return pairwise_dist(x, y).square()


@geometry_fn
def dist(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """Row-wise geodesic distance acos(x . y)."""
    return safe_acos((safe_normalize(x) * safe_normalize(y)).sum(-1))


@geometry_fn
def dist_to_origin(x: Tensor, curv: Curv = 1.0) -> Tensor:
    """|x| (1 for points on the sphere)."""
    return safe_norm(x)


@geometry_fn
def half_aperture(x: Tensor, curv: Curv = 1.0, min_radius: float = 0.1) -> Tensor:
    """Euclidean formula asin(min(1, K/|x|)) in the ambient space."""
    return _euc.half_aperture(x, min_radius=min_radius)


@geometry_fn
def ext_angle(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """Euclidean exterior angle at x of triangle centre-x-y in the ambient space."""
    return _euc.ext_angle(x, y)


@geometry_fn
def pairwise_ext_angle(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """Pairwise version of ``ext_angle`` (Gram matrix, O(B1 B2) memory)."""
    return _euc.pairwise_ext_angle(x, y)


@geometry_fn
def midpoint(x: Tensor, curv: Curv = 1.0) -> Tensor:
    """Normalised mean over dim -2: (..., N, D) -> (..., D)."""
    return safe_normalize(x.mean(dim=-2))


@geometry_fn
def ext_angle_from(root: Tensor, x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """Radial Embedding's Xi_r(x, y) = acos((x - r).(y - x) / (|x - r||y - x|)) (Euclidean)."""
    return _euc.ext_angle_from(root, x, y)


@geometry_fn
def default_root(points: Tensor, curv: Curv = 1.0) -> Tensor:
    """Normalised mean of all the points, shape (D,)."""
    return safe_normalize(points.reshape(-1, points.shape[-1]).mean(dim=0))
