"""Fused pairwise exterior angles: the (B1, B2) part of ``pairwise_ext_angle`` as autograd
Functions that save only the Gram matrix G = x @ y.T (plus O(B) vectors) and compute dL/dG
analytically, reusing buffers in place.

The callers (euclidean.py / lorentz.py) build G and the per-row / per-column vectors with
ordinary autograd ops, so the chain rule to x, y and the curvature through those O(B D) terms
(and the two matmuls dG @ y, dG.T @ x) is left to autograd. Each Function returns gradients for
G, every vector and (Lorentz) the curvature. The formulas and clamps are exactly those of the
plain autograd versions (kept as ``*_reference`` in tests/geometry/test_pairwise_angle_fast.py):

Euclidean (REFERENCE.md section 1):
    sq = max(|x_i|^2 + |y_j|^2 - 2 G, 0),  den = sqrt(max(sq, 1e-20)),  ok = den > 1e-10
    cos = (G / |x_i| - |x_i|) / den  (0 where not ok),  angle = acos(clamp(cos))
Lorentz (u = z - 1 form, see lorentz.py):
    u = max(a_i b_j + a_i + b_j - c G, 0),  ok = u > eps,  den = sqrt(u' (u' + 2)), u' = max(u, eps)
    cos = (A_i G - P_i t_j) / den  (0 where not ok),  A = sqrt(c) t_x / |x|,  P = sqrt(c) |x|
Backward, with a = dL/dcos = -g / sqrt(1 - cos^2) inside the acos clamp and where ok, else 0:
    Euclidean: dnum = a / den,  dsq = -dnum cos / (2 den),  dG = dnum / |x_i| - 2 dsq
    Lorentz:   dnum = a / den,  du = -dnum cos (u + 1) / den,  dG = A_i dnum - c du,
               dc (direct part) = -sum_ij du G
Memory: forward keeps G; backward holds at most three more B1 x B2 float buffers (plus bool
masks). Double backward is not supported (``once_differentiable``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ._numerics import NORM_MIN, NORM_SQ_MIN, _acos_eps, _autocast_on, acosh_eps


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
    return grad.sum_to_size(like.shape) if grad.shape != like.shape else grad


def _acos_grad_(cos: Tensor, grad: Tensor, ok: Tensor) -> Tensor:
    """In place: cos -> dL/dcos = -grad / sqrt(1 - clamp(cos)^2), zero outside the clamp
    (torch.clamp's gradient: zero where strictly outside [lo, hi]) and where not ok."""
    eps = _acos_eps(cos.dtype)
    mask = cos.ge(-1.0 + eps)
    mask.logical_and_(cos.le(1.0 - eps)).logical_and_(ok)
    cos.clamp_(-1.0 + eps, 1.0 - eps).square_().neg_().add_(1.0).rsqrt_().mul_(grad).neg_()
    return cos.masked_fill_(mask.logical_not_(), 0.0)


def _acos_(cos: Tensor) -> Tensor:
    eps = _acos_eps(cos.dtype)
    return cos.clamp_(-1.0 + eps, 1.0 - eps).acos_()


# ----------------------------------------------------------------------------- Euclidean
def _euc_den(gram: Tensor, nx2: Tensor, ny2: Tensor) -> tuple[Tensor, Tensor]:
    """den = safe_sqrt(max(|x|^2 + |y|^2 - 2G, 0)) (>= NORM_MIN) and ok = den > NORM_MIN."""
    den = torch.add(nx2, ny2)
    if den.shape != gram.shape:
        den = den.expand(gram.shape).contiguous()
    den.add_(gram, alpha=-2.0).clamp_min_(0.0).clamp_min_(NORM_SQ_MIN).sqrt_()
    ok = den > NORM_MIN
    return den.clamp_min_(NORM_MIN), ok


def _euc_cos(gram: Tensor, nx2: Tensor, ny2: Tensor, inv: Tensor, nx: Tensor) -> tuple[Tensor, ...]:
    """(cos, den, ok) with cos = (G/|x| - |x|)/den, 0 where not ok."""
    den, ok = _euc_den(gram, nx2, ny2)
    cos = torch.mul(gram, inv).sub_(nx).div_(den)
    return cos.masked_fill_(ok.logical_not(), 0.0), den, ok


class EuclideanExtAngle(torch.autograd.Function):
    """angle_ij = acos((G_ij inv_i - nx_i) / sqrt(nx2_i + ny2_j - 2 G_ij)); see module doc.

    Inputs: gram (..., B1, B2), nx2 = |x|^2 (..., B1, 1), ny2 = |y|^2 (..., 1, B2),
    inv = safe 1/|x| (..., B1, 1), nx = safe |x| (..., B1, 1).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, gram: Tensor, nx2: Tensor, ny2: Tensor, inv: Tensor, nx: Tensor
    ) -> Tensor:
        cos, den, _ = _euc_cos(gram, nx2, ny2, inv, nx)
        del den
        ctx.save_for_backward(gram, nx2, ny2, inv, nx)
        return _acos_(cos)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        gram, nx2, ny2, inv, nx = ctx.saved_tensors
        need = ctx.needs_input_grad
        with _no_autocast():
            grad = grad.to(gram.dtype)
            cos, den, ok = _euc_cos(gram, nx2, ny2, inv, nx)
            den.reciprocal_()  # 1 / den
            w = torch.mul(cos, den)  # cos / den
            a = _acos_grad_(cos, grad, ok)  # dL/dcos (in cos's buffer)
            del ok
            dnum = a.mul_(den)  # a / den
            w.mul_(dnum)  # dnum cos / den = -2 dsq
            d_inv = _rowdot(dnum, gram) if need[3] else None
            d_nx = -dnum.sum(-1, keepdim=True) if need[4] else None
            d_nx2 = w.sum(-1, keepdim=True).mul_(-0.5) if need[1] else None
            d_ny2 = w.sum(-2, keepdim=True).mul_(-0.5) if need[2] else None
            d_gram = None
            if need[0]:
                d_gram = torch.mul(dnum, inv, out=den)
                d_gram.add_(w)
        return (
            _fit(d_gram, gram, need[0]),
            _fit(d_nx2, nx2, need[1]),
            _fit(d_ny2, ny2, need[2]),
            _fit(d_inv, inv, need[3]),
            _fit(d_nx, nx, need[4]),
        )


# ----------------------------------------------------------------------------- Lorentz
def _lor_u(gram: Tensor, ax: Tensor, ay: Tensor, c: Tensor) -> Tensor:
    """u = max(a_x a_y + a_x + a_y - c G, 0) as a new (..., B1, B2) buffer."""
    u = torch.mul(ax, ay)  # same op order (and rounding) as lorentz._zm1
    if u.shape != gram.shape:
        u = u.expand_as(gram).contiguous()
    return u.add_(ax).add_(ay).sub_(torch.mul(gram, c)).clamp_min_(0.0)


def _lor_cos(
    gram: Tensor, c: Tensor, amul: Tensor, pmul: Tensor, ax: Tensor, ty: Tensor, ay: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(cos, u', den, ok): u' = max(u, eps), den = sqrt(u'(u'+2)), cos = num/den (0 if not ok)."""
    eps = acosh_eps(gram.dtype)
    u = _lor_u(gram, ax, ay, c)
    ok = u > eps
    u.clamp_min_(eps)
    den = torch.add(u, 2.0).mul_(u).sqrt_()
    cos = torch.mul(gram, amul).addcmul_(pmul, ty, value=-1.0).div_(den)
    return cos.masked_fill_(ok.logical_not(), 0.0), u, den, ok


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
        cos, u, den, _ = _lor_cos(gram, c, amul, pmul, ax, ty, ay)
        del u, den
        ctx.save_for_backward(gram, c, amul, pmul, ax, ty, ay)
        return _acos_(cos)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        gram, c, amul, pmul, ax, ty, ay = ctx.saved_tensors
        need = ctx.needs_input_grad
        with _no_autocast():
            grad = grad.to(gram.dtype)
            cos, u, den, ok = _lor_cos(gram, c, amul, pmul, ax, ty, ay)
            u.add_(1.0).div_(den).mul_(cos)  # cos (u + 1) / den
            a = _acos_grad_(cos, grad, ok)
            del ok
            dnum = a.div_(den)
            du = u.mul_(dnum).neg_()  # -dnum cos (u + 1) / den
            d_c = -_rowdot(du, gram).sum() if need[1] else None
            d_amul = _rowdot(dnum, gram) if need[2] else None
            d_pmul = -_row_mv(dnum, ty) if need[3] else None
            d_ax = _row_mv(du, ay + 1.0) if need[4] else None
            d_ty = -_col_mv(pmul, dnum) if need[5] else None
            d_ay = _col_mv(ax + 1.0, du) if need[6] else None
            d_gram = None
            if need[0]:
                d_gram = torch.mul(dnum, amul, out=den).addcmul_(du, c, value=-1.0)
        return (
            _fit(d_gram, gram, need[0]),
            _fit(d_c, c, need[1]),
            _fit(d_amul, amul, need[2]),
            _fit(d_pmul, pmul, need[3]),
            _fit(d_ax, ax, need[4]),
            _fit(d_ty, ty, need[5]),
            _fit(d_ay, ay, need[6]),
        )
