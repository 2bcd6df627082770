"""Lorentz (hyperboloid) model of curvature -c, c > 0 (MERU, ATMG). docs/reference.md section 1.

A point is stored by its space part x in R^D; its time part is x_t = sqrt(1/c + |x|^2).
Internally we use the scaled time part t = sqrt(c) x_t = sqrt(1 + c|x|^2) and
z = -c <x, y>_L = t_x t_y - c x.y >= 1, so that dist = acosh(z) / sqrt(c).

Numerics: u = z - 1 is computed without forming 1 + (small) (see ``_zm1``), acosh(1 + u) as
log1p(u + sqrt(u (u + 2))) with u clamped >= a dtype-aware eps; this keeps distances accurate
for nearby points and for c -> 0, where the naive acosh(z) loses all digits in float32.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._numerics import (
    SINH_MAX,
    acosh_eps,
    curv_tensor,
    geometry_fn,
    safe_acos,
    safe_asin,
    safe_inv_norm,
    safe_norm,
    safe_normalize,
    safe_sqrt,
    sq_norm,
)
from ._pairwise_angle import LorentzExtAngle

HAS_ORIGIN: bool = True

Curv = float | Tensor


# ----------------------------------------------------------------------------- helpers
def _t(nx2: Tensor, c: Tensor) -> Tensor:
    """Scaled time part sqrt(c) x_t = sqrt(1 + c |x|^2)."""
    return torch.sqrt(1.0 + c * nx2)


def _tm1(nx2: Tensor, t: Tensor, c: Tensor) -> Tensor:
    """t - 1 = c|x|^2 / (t + 1), without cancellation."""
    return c * nx2 / (t + 1.0)


def _zm1(xy: Tensor, ax: Tensor, ay: Tensor, c: Tensor) -> Tensor:
    """u = z - 1 = -c<x,y>_L - 1 = a_x a_y + a_x + a_y - c x.y with a = t - 1; clamped >= 0."""
    # (ax + ay) grouped so that u(x, y) == u(y, x) bit for bit (float addition is not associative)
    return (ax * ay + (ax + ay) - c * xy).clamp_min(0.0)


def _acosh1p(u: Tensor) -> Tensor:
    """acosh(1 + u) = log1p(u + sqrt(u (u + 2))), u clamped >= acosh_eps(dtype)."""
    u = u.clamp_min(acosh_eps(u.dtype))
    return torch.log1p(u + torch.sqrt(u * (u + 2.0)))


def _angle_cos(num: Tensor, *us: Tensor) -> Tensor:
    """num / prod sqrt(u (u + 2)); 0 (angle pi/2) with zero gradient where any u is at its clamp
    (coincident points: the angle is undefined there)."""
    eps = acosh_eps(num.dtype)
    den = torch.ones_like(num)
    ok = torch.ones_like(num, dtype=torch.bool)
    for u in us:
        den = den * _sinh_u(u)
        ok = ok & (u > eps)
    return torch.where(ok, num / den, torch.zeros_like(num))


def _sinh_u(u: Tensor) -> Tensor:
    """sqrt(z^2 - 1) = sinh(acosh z) = sqrt(u (u + 2)), u clamped >= acosh_eps."""
    u = u.clamp_min(acosh_eps(u.dtype))
    return torch.sqrt(u * (u + 2.0))


def _rowwise_u(x: Tensor, y: Tensor, c: Tensor) -> Tensor:
    nx2, ny2 = sq_norm(x), sq_norm(y)
    ax = _tm1(nx2, _t(nx2, c), c)
    ay = _tm1(ny2, _t(ny2, c), c)
    return _zm1((x * y).sum(-1), ax, ay, c)


def _pairwise_u(x: Tensor, y: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """u_ij = z_ij - 1 (B1, B2) and the Gram matrix x_i . y_j."""
    gram = x @ y.transpose(-1, -2)
    nx2, ny2 = sq_norm(x), sq_norm(y)
    ax = _tm1(nx2, _t(nx2, c), c)[..., :, None]
    ay = _tm1(ny2, _t(ny2, c), c)[..., None, :]
    return _zm1(gram, ax, ay, c), gram


# ----------------------------------------------------------------------------- public API
@geometry_fn
def time_part(x: Tensor, curv: Curv = 1.0) -> Tensor:
    """x_t = sqrt(1/c + |x|^2) (extra helper, not in the cross-geometry contract)."""
    c = curv_tensor(curv, x)
    return torch.sqrt(1.0 / c + sq_norm(x))


@geometry_fn
def inner(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """Row-wise <x,y>_L = x.y - x_t y_t (extra helper)."""
    c = curv_tensor(curv, x)
    return -(_rowwise_u(x, y, c) + 1.0) / c


@geometry_fn
def exp_map0(v: Tensor, curv: Curv = 1.0) -> Tensor:
    """Exp map at O: sinh(sqrt(c)|v|) v / (sqrt(c)|v|), sinh input capped at asinh(2^15)."""
    c = curv_tensor(curv, v)
    sc = c.sqrt()
    r = sc * safe_norm(v, keepdim=True)
    return torch.sinh(r.clamp_max(SINH_MAX)) / r * v


@geometry_fn
def log_map0(x: Tensor, curv: Curv = 1.0) -> Tensor:
    """Log map at O: acosh(sqrt(c) x_t) x / (sqrt(c)|x|), computed as asinh(sqrt(c)|x|) (same
    value; acosh(sqrt(1 + c|x|^2)) = asinh(sqrt(c)|x|) needs no clamp)."""
    c = curv_tensor(curv, x)
    sc = c.sqrt()
    r = sc * safe_norm(x, keepdim=True)
    return torch.asinh(r) / r * x


@geometry_fn
def pairwise_inner(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """<x_i, y_j>_L = x_i.y_j - x_t,i y_t,j as (B1, B2)."""
    c = curv_tensor(curv, x)
    u, _ = _pairwise_u(x, y, c)
    return -(u + 1.0) / c


@geometry_fn
def pairwise_dist(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """d_L(x_i, y_j) = acosh(-c <x_i, y_j>_L) / sqrt(c), (B1, B2), from one Gram matrix."""
    c = curv_tensor(curv, x)
    u, _ = _pairwise_u(x, y, c)
    return _acosh1p(u) / c.sqrt()


@geometry_fn
def pairwise_sqdist(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """d_L(x_i, y_j)^2."""
    c = curv_tensor(curv, x)
    u, _ = _pairwise_u(x, y, c)
    return _acosh1p(u).square() / c


@geometry_fn
def dist(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """Row-wise d_L(x, y) = acosh(-c <x,y>_L) / sqrt(c)."""
    c = curv_tensor(curv, x)
    return _acosh1p(_rowwise_u(x, y, c)) / c.sqrt()


@geometry_fn
def dist_to_origin(x: Tensor, curv: Curv = 1.0) -> Tensor:
    """d_L(O, x) = asinh(sqrt(c)|x|) / sqrt(c)."""
    c = curv_tensor(curv, x)
    sc = c.sqrt()
    return torch.asinh(sc * safe_norm(x)) / sc


@geometry_fn
def half_aperture(x: Tensor, curv: Curv = 1.0, min_radius: float = 0.1) -> Tensor:
    """MERU cone half-aperture asin(min(1, 2K / (sqrt(c)|x|))), K = min_radius."""
    c = curv_tensor(curv, x)
    return safe_asin(2.0 * min_radius / (c.sqrt() * safe_norm(x)))


@geometry_fn
def ext_angle(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """Exterior angle at x of triangle O-x-y (row-wise), docs/reference.md section 1:

    acos((y_t + c<x,y>_L x_t) / (|x| sqrt((c<x,y>_L)^2 - 1))), rewritten without cancellation as
    cos = sqrt(c) (t_x (x.y)/|x| - t_y |x|) / sqrt(u (u + 2)),  t = sqrt(c) x_t,  u = z - 1.
    """
    c = curv_tensor(curv, x)
    nx2, ny2 = sq_norm(x), sq_norm(y)
    tx, ty = _t(nx2, c), _t(ny2, c)
    u = _zm1((x * y).sum(-1), _tm1(nx2, tx, c), _tm1(ny2, ty, c), c)
    proj = (safe_normalize(x) * y).sum(-1)  # x.y / |x|
    cos = _angle_cos(c.sqrt() * (tx * proj - ty * safe_sqrt(nx2)), u)
    return safe_acos(cos)


@geometry_fn
def pairwise_ext_angle(x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """ext_angle(x_i, y_j) as (B1, B2) from the Gram matrix, norms and time parts (O(B1 B2)):

    cos_ij = sqrt(c) (t_x,i G_ij / |x_i| - t_y,j |x_i|) / sqrt(u_ij (u_ij + 2)),
    u_ij = a_i b_j + a_i + b_j - c G_ij (a = t_x - 1, b = t_y - 1). The B1 x B2 part is one fused
    autograd Function (``_pairwise_angle.LorentzExtAngle``: saves only G, analytic backward incl.
    the curvature gradient; 2 matmuls in all). The O(B) vectors below stay on autograd.
    """
    c = curv_tensor(curv, x)
    sc = c.sqrt()
    nx2, ny2 = sq_norm(x, keepdim=True), sq_norm(y).unsqueeze(-2)
    tx, ty = _t(nx2, c), _t(ny2, c)
    ax, ay = _tm1(nx2, tx, c), _tm1(ny2, ty, c)
    gram = x @ y.transpose(-1, -2)
    amul = sc * tx * safe_inv_norm(x, keepdim=True)  # sqrt(c) t_x / |x|
    pmul = sc * safe_sqrt(nx2)  # sqrt(c) |x|
    return LorentzExtAngle.apply(gram, c, amul, pmul, ax, ty, ay)


@geometry_fn
def midpoint(x: Tensor, curv: Curv = 1.0) -> Tensor:
    """Einstein midpoint of x_1..x_n over dim -2, (..., N, D) -> (..., D). closed form of
    docs/reference.md section 1:

    Klein k = sum x_i / (sqrt(c) sum x_t,i); space part m = k / sqrt(1 - c|k|^2)
             = S / sqrt(T^2 - c|S|^2),  S = sum x_i,  T = sum t_i (t = sqrt(c) x_t).
    T^2 - c|S|^2 = (T - sqrt(c)|S|)(T + sqrt(c)|S|) with
    T - sqrt(c)|S| = sum 1/(t_i + sqrt(c)|x_i|) + sqrt(c)(sum |x_i| - |S|)  (both terms >= 0),
    and T^2 - c|S|^2 = sum_ij z_ij >= n^2 (used as a clamp).
    (Not the ATMG release's version, which averages raw space parts.)
    """
    c = curv_tensor(curv, x)
    sc = c.sqrt()
    n = x.shape[-2]
    nx2 = sq_norm(x)
    nx = safe_sqrt(nx2)
    t = _t(nx2, c)
    s = x.sum(dim=-2)
    ns = safe_norm(s)
    tsum = t.sum(dim=-1)
    minus = (1.0 / (t + sc * nx)).sum(dim=-1) + sc * (nx.sum(dim=-1) - ns).clamp_min(0.0)
    denom = (minus * (tsum + sc * ns)).clamp_min(float(n * n))
    return s / denom.sqrt()[..., None]


@geometry_fn
def ext_angle_from(root: Tensor, x: Tensor, y: Tensor, curv: Curv = 1.0) -> Tensor:
    """Exterior angle at x of triangle root-x-y, = pi - interior angle at x, by the hyperbolic
    law of cosines with z = cosh(sqrt(c) d) = 1 + u:

    cos(ext) = (z_ry - z_xr z_xy) / (sinh_xr sinh_xy) = (u_ry - u_xr - u_xy - u_xr u_xy) / (...).
    Equals ext_angle(x, y) when root = O; ``root`` broadcasts against x (e.g. shape (D,)).
    """
    c = curv_tensor(curv, x)
    root = root.expand_as(x)
    u_xr = _rowwise_u(x, root, c)
    u_xy = _rowwise_u(x, y, c)
    u_ry = _rowwise_u(root, y, c)
    cos = _angle_cos(u_ry - u_xr - u_xy - u_xr * u_xy, u_xr, u_xy)
    return safe_acos(cos)


@geometry_fn
def default_root(points: Tensor, curv: Curv = 1.0) -> Tensor:
    """The origin O (space part zeros), shape (D,)."""
    return torch.zeros(points.shape[-1], dtype=points.dtype, device=points.device)

