"""The fused pairwise exterior angle (geometry/_pairwise_angle.py) equals the plain autograd
implementation it replaced (copied below as ``*_reference``) in value and in gradients wrt x, y
and the curvature; finite on degenerate inputs; float32 under bf16 autocast."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from clipspace.geometry import euclidean as E
from clipspace.geometry import lorentz as L
from clipspace.geometry import sphere as S
from clipspace.geometry._numerics import (
    NORM_SQ_MIN,
    acosh_eps,
    curv_tensor,
    safe_acos,
    safe_div,
    safe_inv_norm,
    safe_sqrt,
    sq_norm,
)
from clipspace.geometry._pairwise_angle import COINCIDENT_EPS


# ----------------------------------------------------------------- reference (previous code)
def euclidean_reference(x: Tensor, y: Tensor) -> Tensor:
    gram = x @ y.transpose(-1, -2)
    nx2, ny2 = sq_norm(x), sq_norm(y)
    sq = (nx2[..., :, None] - 2.0 * gram + ny2[..., None, :]).clamp_min(0.0)
    # the coincidence rule of the fused version: sq within the Gram form's rounding noise is 0
    noise = COINCIDENT_EPS * torch.finfo(x.dtype).eps * (nx2[..., :, None] + ny2[..., None, :])
    sq = torch.where(sq <= noise + NORM_SQ_MIN, torch.zeros_like(sq), sq)
    proj = gram * safe_inv_norm(x)[..., :, None]
    cos = safe_div(proj - safe_sqrt(nx2)[..., :, None], safe_sqrt(sq))
    return safe_acos(cos)


def lorentz_reference(x: Tensor, y: Tensor, curv: float | Tensor) -> Tensor:
    c = curv_tensor(curv, x)
    eps = acosh_eps(x.dtype)
    nx2, ny2 = sq_norm(x), sq_norm(y)
    tx, ty = torch.sqrt(1.0 + c * nx2)[..., :, None], torch.sqrt(1.0 + c * ny2)[..., None, :]
    ax, ay = c * nx2[..., :, None] / (tx + 1.0), c * ny2[..., None, :] / (ty + 1.0)
    gram = x @ y.transpose(-1, -2)
    u = (ax * ay + ax + ay - c * gram).clamp_min(0.0)
    proj = gram * safe_inv_norm(x)[..., :, None]
    num = c.sqrt() * (tx * proj - ty * safe_sqrt(nx2)[..., :, None])
    uc = u.clamp_min(eps)
    cos = torch.where(u > eps, num / torch.sqrt(uc * (uc + 2.0)), torch.zeros_like(num))
    return safe_acos(cos)


def _fast(geo: str, x: Tensor, y: Tensor, c: Tensor) -> Tensor:
    return {"euclidean": E, "lorentz": L, "sphere": S}[geo].pairwise_ext_angle(x, y, c)


def _ref(geo: str, x: Tensor, y: Tensor, c: Tensor) -> Tensor:
    return lorentz_reference(x, y, c) if geo == "lorentz" else euclidean_reference(x, y)


def _value_and_grads(fn, x: Tensor, y: Tensor, c: Tensor, w: Tensor) -> list[Tensor]:
    x, y, c = (t.detach().clone().requires_grad_(True) for t in (x, y, c))
    out = fn(x, y, c)
    (out * w).sum().backward()
    return [out.detach(), x.grad, y.grad, c.grad if c.grad is not None else torch.zeros_like(c)]


def _inputs(seed: int, b1: int, b2: int, d: int, scale: float, dtype: torch.dtype):
    g = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(b1, d, generator=g, dtype=torch.float64)
    y = scale * torch.randn(b2, d, generator=g, dtype=torch.float64)
    w = torch.randn(b1, b2, generator=g, dtype=torch.float64)
    return x.to(dtype), y.to(dtype), w.to(dtype)


GEOS = ["euclidean", "lorentz", "sphere"]


# ----------------------------------------------------------------- equality with the reference
@pytest.mark.parametrize("geo", GEOS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("curv", [0.01, 1.0, 100.0])
@pytest.mark.parametrize("scale", [0.05, 1.0, 10.0])
def test_fast_equals_reference_value_and_grad(geo, dtype, curv, scale):
    x, y, w = _inputs(int(curv * 100 + scale * 10), 7, 5, 6, scale, dtype)
    if geo != "lorentz":  # Lorentz: ill-conditioned there, see test_lorentz_rays / _COINCIDENT
        y[0] = x[0]  # an identical pair: angle undefined -> pi/2, zero gradient
        y[1] = 2.0 * x[1]  # y on the ray O->x beyond x: angle ~0 (acos clamp)
        y[2] = 0.5 * x[2]  # y between O and x: angle ~pi
    c = torch.tensor(curv, dtype=dtype)
    got = _value_and_grads(lambda a, b, k: _fast(geo, a, b, k), x, y, c, w)
    ref = _value_and_grads(lambda a, b, k: _ref(geo, a, b, k), x, y, c, w)
    tol = {torch.float64: 1e-9, torch.float32: 2e-4}[dtype]
    names = ["value", "dx", "dy", "dcurv"]
    for name, a, b in zip(names, got, ref):
        assert a.dtype == dtype, name
        scale_ = max(1.0, float(b.abs().max()))
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * scale_, msg=name)
    if geo == "lorentz":
        assert float(got[3].abs()) > 0  # the curvature gradient is really computed


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("curv", [0.01, 1.0, 100.0])
def test_lorentz_rays(dtype, curv):
    """0 beyond x on the ray O->x, pi between O and x (up to the acos clamp and the rounding
    of cos near +-1, which acos amplifies to ~sqrt(2 ulp)), finite gradients."""
    x, _, _ = _inputs(int(curv * 100), 4, 1, 5, 0.5, dtype)
    y = torch.cat([2.0 * x, 0.5 * x])
    x = x.clone().requires_grad_(True)
    out = L.pairwise_ext_angle(x, y, curv)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    tol = 2e-2 if dtype == torch.float32 else 1e-5  # c = 100: ~1e-2 in float32, as before
    ang = torch.stack([out[i, i] for i in range(4)] + [out[i, 4 + i] for i in range(4)])
    want = torch.tensor([0.0] * 4 + [torch.pi] * 4, dtype=dtype)
    torch.testing.assert_close(ang.detach(), want, rtol=0, atol=tol)


@pytest.mark.parametrize("geo", GEOS)
def test_matches_rowwise_ext_angle(geo):
    mod = {"euclidean": E, "lorentz": L, "sphere": S}[geo]
    x, y, _ = _inputs(3, 4, 3, 5, 0.7, torch.float64)
    got = mod.pairwise_ext_angle(x, y, 0.5)
    xi, yj = x[:, None, :].expand(4, 3, 5), y[None, :, :].expand(4, 3, 5)
    torch.testing.assert_close(got, mod.ext_angle(xi, yj, 0.5), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("geo", ["euclidean", "lorentz"])
def test_gradcheck_float64(geo):
    x, y, _ = _inputs(11, 4, 3, 3, 0.8, torch.float64)
    c = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b, k: _fast(geo, a, b, k), (x, y, c), atol=1e-6)


def test_learnable_curvature_gradient_flows_through_log_param():
    """meru-style: curv = exp(log_c) learnable; d loss / d log_c equals the reference's."""
    x, y, w = _inputs(5, 6, 6, 4, 0.5, torch.float32)
    grads = []
    for fn in (L.pairwise_ext_angle, lorentz_reference):
        log_c = torch.tensor(0.3, requires_grad=True)
        (fn(x, y, log_c.exp()) * w).sum().backward()
        grads.append(log_c.grad)
    assert float(grads[0].abs()) > 1e-4
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------- degenerate inputs
def _degenerate(dtype: torch.dtype) -> list[tuple[str, Tensor, Tensor]]:
    x, y, _ = _inputs(7, 4, 4, 5, 1.0, dtype)
    z = torch.zeros(4, 5, dtype=dtype)
    return [
        ("identical", x, x.clone()),
        ("zero x", z, y),
        ("zero y", x, z.clone()),
        ("both zero", z, z.clone()),
        ("huge", 1e4 * x, 1e4 * y),
        ("huge identical", 1e4 * x, 1e4 * x),
        ("tiny", 1e-6 * x, 1e-6 * y),
        ("batch 1", x[:1], y[:1]),
        ("batch 1 identical", x[:1], x[:1].clone()),
    ]


#: Exactly coincident points in Lorentz: u = z - 1 is pure rounding noise (~1e-16 relative to
#: t^2 in float64), often above the acosh clamp, so the angle there is arbitrary (but finite) in
#: the reference implementation as in the fused one; only finiteness is checked for them.
_COINCIDENT = ("identical", "huge identical", "batch 1 identical")


@pytest.mark.parametrize("geo", GEOS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("curv", [0.01, 1.0, 100.0])
def test_degenerate_inputs_finite(geo, dtype, curv):
    for case, x, y in _degenerate(dtype):
        b1, b2 = x.shape[0], y.shape[0]
        w = torch.ones(b1, b2, dtype=dtype)
        c = torch.tensor(curv, dtype=dtype)
        out, dx, dy, dc = _value_and_grads(lambda a, b, k: _fast(geo, a, b, k), x, y, c, w)
        assert out.shape == (b1, b2), case
        for name, t in (("value", out), ("dx", dx), ("dy", dy), ("dc", dc)):
            assert torch.isfinite(t).all(), (geo, case, name, t)
        assert ((out >= 0) & (out <= torch.pi)).all(), case
        if case in ("zero x", "both zero") or (geo != "lorentz" and case in _COINCIDENT):
            diag = out.diagonal() if case != "zero x" else out.flatten()
            torch.testing.assert_close(diag, torch.full_like(diag, torch.pi / 2))
        if dtype == torch.float64 and not (geo == "lorentz" and case in _COINCIDENT):
            # same convention and same gradients as before
            ref = _value_and_grads(lambda a, b, k: _ref(geo, a, b, k), x, y, c, w)
            for a, b in zip((out, dx, dy, dc), ref):
                scale_ = max(1.0, float(b.abs().max()))
                torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-7 * scale_, msg=case)


# ----------------------------------------------------------------- dtypes, autocast, shapes
@pytest.mark.parametrize("geo", GEOS)
def test_bf16_autocast_computes_in_float32(geo):
    x32, y32, w = _inputs(9, 6, 5, 8, 0.5, torch.float32)
    c = torch.tensor(1.0)
    ref = _value_and_grads(lambda a, b, k: _fast(geo, a, b, k), x32, y32, c, w)
    xb, yb = x32.bfloat16().requires_grad_(True), y32.bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = _fast(geo, xb, yb, c)
        assert out.dtype == torch.float32
        (out * w).sum().backward()
    for t in (out, xb.grad, yb.grad):
        assert torch.isfinite(t.float()).all()
    # the only loss of precision is the bf16 rounding of the inputs
    exact = _fast(geo, xb.detach().float(), yb.detach().float(), c)
    torch.testing.assert_close(out.detach(), exact, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.detach(), ref[0], rtol=0, atol=0.05)
    gmax = float(ref[1].abs().max())
    torch.testing.assert_close(xb.grad.float(), ref[1], rtol=0.1, atol=0.1 * gmax)


@pytest.mark.parametrize("geo", ["euclidean", "lorentz"])
def test_leading_batch_dims_and_no_grad(geo):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    y = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    c = torch.tensor(0.5, dtype=torch.float64)
    out = _fast(geo, x, y, c)
    assert out.shape == (2, 3, 5)
    for k in range(2):
        torch.testing.assert_close(out[k], _ref(geo, x[k], y[k], c))
    xr = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: _fast(geo, a, y, c), (xr,))
    with torch.no_grad():
        torch.testing.assert_close(_fast(geo, x, y, c), out)


def test_float64_is_kept():
    x, y, _ = _inputs(1, 3, 3, 4, 1.0, torch.float64)
    assert E.pairwise_ext_angle(x, y).dtype == torch.float64
    assert L.pairwise_ext_angle(x.float(), y, 1.0).dtype == torch.float64


@pytest.mark.parametrize("geo", ["euclidean", "lorentz"])
def test_always_mask_path_matches_lazy_path(geo, monkeypatch):
    """On accelerators the masks are always built (no host sync): same values and gradients."""
    from clipspace.geometry import _pairwise_angle

    x, y, w = _inputs(8, 5, 4, 3, 1.0, torch.float64)
    y[1] = 2.0 * x[1]  # clamped cosine
    y[2] = x[2] if geo == "euclidean" else y[2]  # undefined angle
    x[3] = 0.0  # zero vectors: the pair (3, 0) is undefined
    y[0] = 0.0
    c = torch.tensor(0.5, dtype=torch.float64)
    lazy = _value_and_grads(lambda a, b, k: _fast(geo, a, b, k), x, y, c, w)
    monkeypatch.setattr(_pairwise_angle, "_check", lambda t: True)
    always = _value_and_grads(lambda a, b, k: _fast(geo, a, b, k), x, y, c, w)
    for a, b in zip(lazy, always):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_curvature_of_shape_one():
    x, y, w = _inputs(6, 3, 2, 4, 0.5, torch.float64)
    grads = []
    for fn in (L.pairwise_ext_angle, lorentz_reference):
        c = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
        (fn(x, y, c) * w).sum().backward()
        assert c.grad.shape == (1,)
        grads.append(c.grad)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("geo", GEOS)
def test_empty_batch(geo):
    x = torch.zeros(0, 4, requires_grad=True)
    y = torch.randn(3, 4, requires_grad=True)
    out = _fast(geo, x, y, torch.tensor(1.0))
    assert out.shape == (0, 3)
    out.sum().backward()
    assert y.grad.shape == (3, 4) and float(y.grad.abs().sum()) == 0.0
