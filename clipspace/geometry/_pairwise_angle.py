"""Fused pairwise exterior angles: the (B1, B2) part of ``pairwise_ext_angle`` as autograd
Functions that save only the Gram matrix G = x @ y.T (plus O(B) vectors) and compute dL/dG
analytically, reusing buffers in place.

The callers (euclidean.py / lorentz.py) build G and the per-row / per-column vectors with
ordinary autograd ops, so the chain rule to x, y and the curvature through those O(B D) terms
(and the two matmuls dG @ y, dG.T @ x) is left to autograd. Each Function returns gradients for
G, every vector and (Lorentz) the curvature. The formulas and clamps are exactly those of the
plain autograd versions (kept as ``*_reference`` in tests/geometry/test_pairwise_angle_fast.py):

Euclidean (docs/reference.md section 1):
    sq = max(|x_i|^2 + |y_j|^2 - 2 G, 0),  den = sqrt(max(sq, 1e-20)),
    ok = sq > 1e-20 + 16 eps (|x_i|^2 + |y_j|^2)  (eps: the dtype's; below is rounding noise)
    cos = (G / |x_i| - |x_i|) / den  (0 where not ok),  angle = acos(clamp(cos))
Lorentz (u = z - 1 form, see lorentz.py):
    u = max(a_i b_j + a_i + b_j - c G, 0),  ok = u > eps,  den = sqrt(u' (u' + 2)), u' = max(u, eps)
    cos = (A_i G - P_i t_j) / den  (0 where not ok),  A = sqrt(c) t_x / |x|,  P = sqrt(c) |x|
Both compute r = 1/den in place (0 where the angle is undefined, so cos = 0, angle pi/2, and
every gradient term, which carries a factor r, is 0 there) and cos = num * r.
Backward, with dnum = dL/dcos r and n = -dnum = g r / sqrt(1 - cos^2) (0 strictly outside the
acos clamp):
    Euclidean: 2 dsq = -dnum cos r,  dG = dnum / |x_i| - 2 dsq
    Lorentz:   du = -dnum cos (u + 1) r, with (u + 1) r = sqrt(1 + r^2) since (u + 1)^2 = den^2 + 1,
               dG = A_i dnum - c du,  dc (direct part) = -sum_ij du G
Vector gradients are row / column sums and matrix-vector products (no B1 x B2 temporaries).
Memory: G is the only saved B1 x B2 tensor; the forward allocates two B1 x B2 buffers (r and
the output), the backward three (r, cos -> n, v; dG is written into r).
Masks for the rare undefined angles / clamped cosines are built only when a min/max pass finds
such elements on CPU (always on accelerators, to avoid a host sync). Double backward is not
supported (``once_differentiable``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ._numerics import NORM_SQ_MIN, _acos_eps, _autocast_on, acosh_eps


@contextlib.contextmanager
def _no_autocast() -> Iterator[None]:
    """Disable autocast (CPU and CUDA) for the backward's matrix-vector products."""
    with contextlib.ExitStack() as stack:
        for dev in ("cpu", "cuda"):
            if _autocast_on(dev):
                stack.enter_context(torch.autocast(device_type=dev, enabled=False))
        yield


def _rowdot(a: Tensor, b: Tensor) -> Tensor:
    """sum_j a_ij b_ij as (..., B1, 1), via a batched (1 x B2)(B2 x 1) product (no B1 x B2 temp)."""
    return torch.matmul(a.unsqueeze(-2), b.unsqueeze(-1)).squeeze(-1)


def _row_mv(m: Tensor, v: Tensor) -> Tensor:
    """sum_j m_ij v_j for v of shape (..., 1, B2): (..., B1, 1)."""
    return m @ v.transpose(-1, -2)


def _col_mv(v: Tensor, m: Tensor) -> Tensor:
    """sum_i v_i m_ij for v of shape (..., B1, 1): (..., 1, B2)."""
    return v.transpose(-1, -2) @ m


def _fit(grad: Tensor | None, like: Tensor, needed: bool) -> Tensor | None:
    """Sum a broadcast gradient down to ``like``'s shape (None when not needed)."""
    if not needed or grad is None:
        return None
    if grad.shape == like.shape:
        return grad
    if grad.numel() == like.numel():  # e.g. a curvature of shape (1,) and its 0-dim gradient
        return grad.reshape(like.shape)
    return grad.sum_to_size(like.shape)


def _check(t: Tensor) -> bool:
    """Whether a data-dependent mask must be built: always on accelerators (no host sync), on
    CPU only when a cheap reduction says some element needs it (``_lazy_mask``)."""
    return t.device.type != "cpu"


def _lazy_mask(t: Tensor, le: float) -> Tensor | None:
    """t <= le as a bool mask, or None when no element is (checked with one min on CPU)."""
    if t.numel() == 0 or (not _check(t) and float(t.min()) > le):
        return None
    return t <= le


def _outside(t: Tensor, lo: float, hi: float) -> bool:
    """Whether any element of t lies outside [lo, hi] (one min/max pass)."""
    if t.numel() == 0:
        return False
    tmin, tmax = torch.aminmax(t)
    return float(tmin) < lo or float(tmax) > hi


def _neg_acos_grad_(cos: Tensor, grad: Tensor) -> Tensor:
    """In place: cos -> -dL/dcos = grad / sqrt(1 - clamp(cos)^2), zero strictly outside the clamp
    [lo, hi] (torch.clamp's gradient)."""
    eps = _acos_eps(cos.dtype)
    lo, hi = -1.0 + eps, 1.0 - eps
    mask = None
    if _check(cos) or _outside(cos, lo, hi):
        mask = cos.lt(lo).logical_or_(cos.gt(hi))
    cos.clamp_(lo, hi).square_().neg_().add_(1.0).rsqrt_().mul_(grad)
    return cos if mask is None else cos.masked_fill_(mask, 0.0)


def _acos_(cos: Tensor) -> Tensor:
    eps = _acos_eps(cos.dtype)
    return cos.clamp_(-1.0 + eps, 1.0 - eps).acos_()


# ----------------------------------------------------------------------------- Euclidean
#: |x|^2 + |y|^2 - 2 G below this many machine epsilons of |x|^2 + |y|^2 is rounding noise of
#: the Gram form (the BLAS summation order decides its sign and size): the points coincide.
COINCIDENT_EPS = 16.0


def _coincident(sq: Tensor, nx2: Tensor, ny2: Tensor) -> Tensor | None:
    """Mask of pairs whose squared distance is at most NORM_SQ_MIN plus the rounding noise of
    the Gram form, or None when there is none (one min/max pass on CPU)."""
    rel = COINCIDENT_EPS * torch.finfo(sq.dtype).eps
    if sq.numel() == 0:
        return None
    if not _check(sq):
        bound = NORM_SQ_MIN + rel * (float(nx2.max()) + float(ny2.max()))
        if float(sq.min()) > bound:
            return None
    return sq <= (nx2 + ny2).mul_(rel).add_(NORM_SQ_MIN)


def _euc_cos(gram: Tensor, nx2: Tensor, ny2: Tensor, inv: Tensor, nx: Tensor) -> tuple[Tensor, ...]:
    """(cos, r): r = 1/den (0 where den = safe_sqrt(sq) <= NORM_MIN: undefined angle),
    cos = (G/|x| - |x|) r. Two new B1 x B2 buffers."""
    r = torch.add(nx2, ny2)
    if r.shape != gram.shape:
        r = r.expand(gram.shape).contiguous()
    r.add_(gram, alpha=-2.0).clamp_min_(0.0)  # sq
    bad = _coincident(r, nx2, ny2)
    r.clamp_min_(NORM_SQ_MIN).rsqrt_()
    if bad is not None:
        r.masked_fill_(bad, 0.0)
    cos = torch.mul(gram, inv).sub_(nx).mul_(r)
    return cos, r


class EuclideanExtAngle(torch.autograd.Function):
    """angle_ij = acos((G_ij inv_i - nx_i) / sqrt(nx2_i + ny2_j - 2 G_ij)); see module doc.

    Inputs: gram (..., B1, B2), nx2 = |x|^2 (..., B1, 1), ny2 = |y|^2 (..., 1, B2),
    inv = safe 1/|x| (..., B1, 1), nx = safe |x| (..., B1, 1).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, gram: Tensor, nx2: Tensor, ny2: Tensor, inv: Tensor, nx: Tensor
    ) -> Tensor:
        cos, r = _euc_cos(gram, nx2, ny2, inv, nx)
        del r
        ctx.save_for_backward(gram, nx2, ny2, inv, nx)
        return _acos_(cos)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        gram, nx2, ny2, inv, nx = ctx.saved_tensors
        need = ctx.needs_input_grad
        with _no_autocast():
            grad = grad.to(gram.dtype)
            cos, r = _euc_cos(gram, nx2, ny2, inv, nx)
            w = torch.mul(cos, r)  # cos / den
            n = _neg_acos_grad_(cos, grad).mul_(r)  # n = -dnum = -(dL/dcos) / den
            w.mul_(n)  # -dnum cos / den = 2 dsq
            d_inv = -_rowdot(n, gram) if need[3] else None
            d_nx = n.sum(-1, keepdim=True) if need[4] else None
            d_nx2 = w.sum(-1, keepdim=True).mul_(0.5) if need[1] else None
            d_ny2 = w.sum(-2, keepdim=True).mul_(0.5) if need[2] else None
            # dG = dnum / |x| - 2 dsq = -(n inv + w)
            d_gram = torch.mul(n, -inv, out=r).sub_(w) if need[0] else None
        return (
            _fit(d_gram, gram, need[0]),
            _fit(d_nx2, nx2, need[1]),
            _fit(d_ny2, ny2, need[2]),
            _fit(d_inv, inv, need[3]),
            _fit(d_nx, nx, need[4]),
        )


# ----------------------------------------------------------------------------- Lorentz
def _lor_cos(
    gram: Tensor, c: Tensor, amul: Tensor, pmul: Tensor, ax: Tensor, ty: Tensor, ay: Tensor
) -> tuple[Tensor, Tensor]:
    """(cos, r): u = max(a_x a_y + a_x + a_y - c G, 0), r = 1/sqrt(u'(u'+2)), u' = max(u, eps)
    (0 where u <= eps: undefined angle), cos = (A G - P t_y) r. Two new B1 x B2 buffers."""
    eps = acosh_eps(gram.dtype)
    r = torch.mul(ax, ay)
    if r.shape != gram.shape:
        r = r.expand(gram.shape).contiguous()
    r.add_(ax).add_(ay).addcmul_(gram, c, value=-1.0).clamp_min_(0.0)  # u
    bad = _lazy_mask(r, eps)
    # u' (u' + 2) = 2 (u' + u'^2 / 2), in place
    r.clamp_min_(eps).addcmul_(r, r, value=0.5).mul_(2.0).rsqrt_()
    if bad is not None:
        r.masked_fill_(bad, 0.0)
    cos = torch.mul(gram, amul).addcmul_(pmul, ty, value=-1.0).mul_(r)
    return cos, r


class LorentzExtAngle(torch.autograd.Function):
    """angle_ij = acos((A_i G_ij - P_i t_j) / sqrt(u (u + 2))), u = a_i b_j + a_i + b_j - c G_ij.

    Inputs: gram (..., B1, B2), c (0-dim), amul = sqrt(c) t_x / |x| (..., B1, 1),
    pmul = sqrt(c) |x| (..., B1, 1), ax = t_x - 1 (..., B1, 1), ty (..., 1, B2),
    ay = t_y - 1 (..., 1, B2), with t = sqrt(1 + c |.|^2).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        gram: Tensor,
        c: Tensor,
        amul: Tensor,
        pmul: Tensor,
        ax: Tensor,
        ty: Tensor,
        ay: Tensor,
    ) -> Tensor:
        cos, r = _lor_cos(gram, c, amul, pmul, ax, ty, ay)
        del r
        ctx.save_for_backward(gram, c, amul, pmul, ax, ty, ay)
        return _acos_(cos)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        gram, c, amul, pmul, ax, ty, ay = ctx.saved_tensors
        need = ctx.needs_input_grad
        with _no_autocast():
            grad = grad.to(gram.dtype)
            cos, r = _lor_cos(gram, c, amul, pmul, ax, ty, ay)
            # v = cos (u + 1) / den, using (u + 1)^2 = den^2 + 1: (u + 1) / den = sqrt(1 + r^2)
            v = torch.mul(r, r).add_(1.0).sqrt_().mul_(cos)
            n = _neg_acos_grad_(cos, grad).mul_(r)  # n = -dnum
            du = v.mul_(n)  # du = -dnum cos (u + 1) / den
            d_c = -_rowdot(du, gram).sum() if need[1] else None
            d_amul = -_rowdot(n, gram) if need[2] else None
            d_pmul = _row_mv(n, ty) if need[3] else None
            d_ax = _row_mv(du, ay + 1.0) if need[4] else None
            d_ty = _col_mv(pmul, n) if need[5] else None
            d_ay = _col_mv(ax + 1.0, du) if need[6] else None
            # dG = A dnum - c du = -(A n + c du)
            d_gram = torch.mul(n, -amul, out=r).addcmul_(du, -c) if need[0] else None
        return (
            _fit(d_gram, gram, need[0]),
            _fit(d_c, c, need[1]),
            _fit(d_amul, amul, need[2]),
            _fit(d_pmul, pmul, need[3]),
            _fit(d_ax, ax, need[4]),
            _fit(d_ty, ty, need[5]),
            _fit(d_ay, ay, need[6]),
        )
