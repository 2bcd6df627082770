"""Shared numerics for the geometry modules: dtype policy, autocast guard, safe clamps.

Policy (docs/ARCHITECTURE.md "geometry"): every geometry function computes in float32, or in
float64 when any point argument is float64, with autocast disabled, so bf16/fp16 inputs or a
surrounding ``torch.autocast`` never lower the precision of distances and angles.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor

F = TypeVar("F", bound=Callable[..., object])

#: acos/asin inputs are clamped to [-1 + eps, 1 - eps]: 1e-6 in float32 (gradient <= ~707,
#: angle error <= 1.5e-3 at 0 and pi), 1e-12 in float64.
ACOS_EPS = 1e-6
ACOS_EPS64 = 1e-12
#: sinh inputs are capped at asinh(2^15) so that exp maps never overflow float32 downstream.
SINH_MAX = math.asinh(2.0**15)
#: norms are floored at NORM_MIN (squared norms clamped at NORM_SQ_MIN before sqrt): zero, not
#: NaN, gradient at the zero vector; directions of vectors shorter than NORM_MIN are taken as 0.
NORM_MIN = 1e-10
NORM_SQ_MIN = NORM_MIN**2

_LOW = (torch.float16, torch.bfloat16)


def acosh_eps(dtype: torch.dtype) -> float:
    """Lower clamp for u in acosh(1 + u) and sqrt(u (u + 2)): 1e-10 in float32, 1e-20 in float64.

    We never form 1 + u in floating point (u = z - 1 is computed directly, see lorentz._zm1), so
    this is the "dtype-aware eps" of docs/reference.md section 1 (in u-space): distances are
    exact down to ~1.4e-5 / sqrt(c) (float32) and the acosh gradient 1/sqrt(u(u+2)) stays <=
    ~7e4. (Smaller floors give larger spurious gradients at exactly coincident far-out points.)
    """
    return 1e-20 if dtype == torch.float64 else 1e-10


def work_dtype(*tensors: object) -> torch.dtype:
    """float64 if any point argument (a tensor with dim >= 1) is float64, else float32.

    0-dim tensors (curvature, scales) follow the points and do not decide the dtype.
    """
    for t in tensors:
        if isinstance(t, Tensor) and t.dim() > 0 and t.dtype == torch.float64:
            return torch.float64
    return torch.float32


def cast(x: Tensor, dtype: torch.dtype) -> Tensor:
    """Cast a tensor to the working dtype (no copy if already there)."""
    return x if x.dtype == dtype else x.to(dtype)


def curv_tensor(curv: float | Tensor, like: Tensor) -> Tensor:
    """Curvature as a tensor of ``like``'s dtype/device (gradients flow through a tensor curv)."""
    if isinstance(curv, Tensor):
        return curv.to(device=like.device, dtype=like.dtype)
    return torch.tensor(float(curv), device=like.device, dtype=like.dtype)


def geometry_fn(fn: F) -> F:
    """Decorator: disable autocast and cast all tensor arguments to the working dtype.

    Low-precision (fp16/bf16) and float32 arguments become float32; if any point argument is
    float64, all floating tensor arguments become float64. Non-tensor arguments pass through.
    """

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        dtype = work_dtype(*args, *kwargs.values())
        args = tuple(cast(a, dtype) if _is_float_tensor(a) else a for a in args)
        kwargs = {k: cast(v, dtype) if _is_float_tensor(v) else v for k, v in kwargs.items()}
        with contextlib.ExitStack() as stack:
            for dev in ("cpu", "cuda"):
                if _autocast_on(dev):
                    stack.enter_context(torch.autocast(device_type=dev, enabled=False))
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _is_float_tensor(a: object) -> bool:
    return isinstance(a, Tensor) and a.is_floating_point()


def _autocast_on(dev: str) -> bool:
    try:
        return bool(torch.is_autocast_enabled(dev))
    except (TypeError, RuntimeError):  # older torch: no device argument
        if dev == "cpu":
            return bool(torch.is_autocast_cpu_enabled())
        return bool(torch.is_autocast_enabled())


def sq_norm(x: Tensor, keepdim: bool = False) -> Tensor:
    """Squared L2 norm over the last dim."""
    return (x * x).sum(dim=-1, keepdim=keepdim)


def safe_sqrt(s: Tensor) -> Tensor:
    """sqrt(max(s, NORM_SQ_MIN)): finite value and gradient (0 when clamped) at s <= 0."""
    return s.clamp_min(NORM_SQ_MIN).sqrt()


def safe_norm(x: Tensor, keepdim: bool = False) -> Tensor:
    """|x| with a zero (not NaN) gradient at the zero vector; value >= NORM_MIN."""
    return safe_sqrt(sq_norm(x, keepdim=keepdim))


def safe_div(num: Tensor, den: Tensor) -> Tensor:
    """num / den where den > NORM_MIN, else 0 with zero gradient (den must be >= 0, finite-grad)."""
    ok = den > NORM_MIN
    return torch.where(ok, num / den.clamp_min(NORM_MIN), torch.zeros_like(num))


def safe_inv_norm(x: Tensor, keepdim: bool = False) -> Tensor:
    """1/|x|, or 0 (zero gradient) for vectors shorter than NORM_MIN."""
    n = safe_norm(x, keepdim=keepdim)
    return safe_div(torch.ones_like(n), n)


def safe_normalize(x: Tensor) -> Tensor:
    """x / |x|; vectors shorter than NORM_MIN map to 0 with zero gradient (no 1/eps blow-up)."""
    return safe_div(x, safe_norm(x, keepdim=True))


def _acos_eps(dtype: torch.dtype) -> float:
    return ACOS_EPS64 if dtype == torch.float64 else ACOS_EPS


def safe_acos(c: Tensor) -> Tensor:
    """acos with input clamped to [-1 + eps, 1 - eps] (eps 1e-6 float32, 1e-12 float64)."""
    eps = _acos_eps(c.dtype)
    return torch.acos(c.clamp(-1.0 + eps, 1.0 - eps))


def safe_asin(s: Tensor) -> Tensor:
    """asin with input clamped to [-1 + eps, 1 - eps] (eps 1e-6 float32, 1e-12 float64)."""
    eps = _acos_eps(s.dtype)
    return torch.asin(s.clamp(-1.0 + eps, 1.0 - eps))
