"""Property tests of the Lorentz model (REFERENCE.md section 1), float64 and float32."""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from clipspace.geometry import euclidean as E
from clipspace.geometry import lorentz as L
from tests.helpers.geometry import FEW, PROPS, TOL, curvs, dims, dtypes, lorentz_time, randn, seeds


def tangent(seed: int, n: int, d: int, c: float, rmax: float, dtype: torch.dtype, rmin=0.0):
    """Tangent vectors at O with random directions and sqrt(c)|v| uniform in [rmin, rmax]."""
    v = randn(seed, n, d)
    g = torch.Generator().manual_seed(seed + 1)
    r = rmin + (rmax - rmin) * torch.rand(n, 1, generator=g, dtype=torch.float64)
    return (v / v.norm(dim=-1, keepdim=True) * r / math.sqrt(c)).to(dtype)


def full(x: torch.Tensor, c: float) -> torch.Tensor:
    """(x_t, x) in R^{D+1}."""
    return torch.cat([lorentz_time(x, c)[..., None], x], dim=-1)


def mink(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a[..., 1:] * b[..., 1:]).sum(-1) - a[..., 0] * b[..., 0]


def ext_angle_minkowski(r, x, y, c):
    """Exterior angle at x of triangle r-x-y from tangent vectors in ambient Minkowski space:
    V_p = P + c<X,P>_L X is the tangent at X pointing to P; ext = pi - angle(V_r, V_y)."""
    R, X, Y = full(r, c), full(x, c), full(y, c)
    vr = R + c * mink(X, R)[..., None] * X
    vy = Y + c * mink(X, Y)[..., None] * X
    cos = mink(vr, vy) / torch.sqrt(mink(vr, vr) * mink(vy, vy))
    return math.pi - torch.acos(cos.clamp(-1, 1))


@PROPS
@given(seed=seeds, d=dims, c=curvs, dtype=dtypes)
def test_exp_log_inverse(seed, d, c, dtype):
    v = tangent(seed, 6, d, c, 8.0, dtype)
    x = L.exp_map0(v, c)
    tol = TOL[dtype]
    torch.testing.assert_close(L.log_map0(x, c), v, rtol=tol, atol=tol / math.sqrt(c))
    x2 = L.exp_map0(L.log_map0(x, c), c)
    torch.testing.assert_close(x2, x, rtol=tol, atol=tol / math.sqrt(c))
    assert x.dtype == dtype


@PROPS
@given(seed=seeds, d=dims, c=curvs, dtype=dtypes)
def test_points_on_hyperboloid(seed, d, c, dtype):
    x = L.exp_map0(tangent(seed, 6, d, c, 8.0, dtype), c).double()
    xt = lorentz_time(x, c)
    # <x,x>_L = |x|^2 - x_t^2 = -1/c with the full time part
    lhs = ((x * x).sum(-1) - xt * xt) * c
    assert bool(((lhs + 1.0).abs() <= 1e-6 * (c * xt * xt)).all())
    torch.testing.assert_close(L.time_part(x, c), xt)
    torch.testing.assert_close(L.inner(x, x, c) * c, torch.full_like(lhs, -1.0))
    torch.testing.assert_close(L.pairwise_inner(x, x, c).diagonal() * c, torch.full_like(lhs, -1.0))


@PROPS
@given(seed=seeds, d=dims, c=curvs, dtype=dtypes)
def test_dist_from_origin_is_tangent_norm(seed, d, c, dtype):
    v = tangent(seed, 6, d, c, 8.0, dtype)
    x = L.exp_map0(v, c)
    sc = math.sqrt(c)
    tol = TOL[dtype]
    vn = v.double().norm(dim=-1)
    torch.testing.assert_close(sc * L.dist_to_origin(x, c).double(), sc * vn, rtol=tol, atol=tol)
    d0 = L.dist(torch.zeros_like(x), x, c).double()
    torch.testing.assert_close(sc * d0, sc * vn, rtol=tol, atol=tol)


@PROPS
@given(seed=seeds, d=dims, c=curvs, dtype=dtypes)
def test_dist_symmetric_and_triangle(seed, d, c, dtype):
    rmax = 6.0 if dtype == torch.float64 else 3.0
    x, y, z = (L.exp_map0(tangent(seed + k, 8, d, c, rmax, dtype), c) for k in (0, 10, 20))
    sc = math.sqrt(c)
    dxy, dyx = L.dist(x, y, c) * sc, L.dist(y, x, c) * sc
    dyz, dxz = L.dist(y, z, c) * sc, L.dist(x, z, c) * sc
    tol = TOL[dtype]
    torch.testing.assert_close(dxy, dyx, rtol=tol, atol=tol)
    assert bool((dxz <= dxy + dyz + 10 * tol).all())
    assert bool((dxy >= 0).all())


@PROPS
@given(seed=seeds, d=dims, c=curvs, dtype=dtypes, a=st.floats(1.3, 3.0), b=st.floats(0.05, 0.7))
def test_ext_angle_on_ray(seed, d, c, dtype, a, b):
    """0 for y on the ray O->x beyond x, pi for y between O and x."""
    rmax = 6.0 if dtype == torch.float64 else 2.5
    v = tangent(seed, 6, d, c, rmax, dtype, rmin=0.2)
    x, beyond, between = (L.exp_map0(v * s, c) for s in (1.0, a, b))
    atol = 1e-5 if dtype == torch.float64 else 0.03
    zero = torch.zeros(6, dtype=dtype)
    torch.testing.assert_close(L.ext_angle(x, beyond, c), zero, rtol=0, atol=atol)
    torch.testing.assert_close(L.ext_angle(x, between, c), zero + math.pi, rtol=0, atol=atol)


@PROPS
@given(seed=seeds, d=st.integers(2, 6), c=curvs)
def test_ext_angle_matches_minkowski_tangent_angle(seed, d, c):
    pts = (tangent(seed + k, 6, d, c, 4.0, torch.float64, 0.3) for k in (0, 7, 9))
    x, y, r = (L.exp_map0(v, c) for v in pts)
    o = torch.zeros_like(x)
    ref = ext_angle_minkowski(o, x, y, c)
    torch.testing.assert_close(L.ext_angle(x, y, c), ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(L.ext_angle_from(o, x, y, c), ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(L.ext_angle_from(o[0], x, y, c), ref, rtol=0, atol=1e-6)
    ref_r = ext_angle_minkowski(r, x, y, c)
    torch.testing.assert_close(L.ext_angle_from(r, x, y, c), ref_r, rtol=0, atol=1e-6)


def klein_midpoint(x: torch.Tensor, c: float) -> torch.Tensor:
    """Explicit Einstein midpoint: Klein coords, Lorentz factors, weighted mean, back."""
    xt = lorentz_time(x, c)
    k = x / (math.sqrt(c) * xt[:, None])
    gamma = 1.0 / torch.sqrt(1.0 - c * (k * k).sum(-1))
    kbar = (gamma[:, None] * k).sum(0) / gamma.sum()
    return kbar / torch.sqrt(1.0 - c * (kbar * kbar).sum())


@PROPS
@given(seed=seeds, d=dims, c=curvs, n=st.integers(1, 12), dtype=dtypes)
def test_einstein_midpoint_closed_form(seed, d, c, n, dtype):
    rmax = 6.0 if dtype == torch.float64 else 3.0
    x = L.exp_map0(tangent(seed, n, d, c, rmax, dtype), c)
    m = L.midpoint(x, c)
    assert m.shape == (d,) and m.dtype == dtype
    tol = TOL[dtype]
    ref = klein_midpoint(x.double(), c)
    sc = math.sqrt(c)
    torch.testing.assert_close(sc * m.double(), sc * ref, rtol=tol, atol=tol)
    # dist_to_origin(midpoint) = atanh(|sum x_i| / sum x_t,i) / sqrt(c)
    xd = x.double()
    expect = torch.atanh(xd.sum(0).norm() / lorentz_time(xd, c).sum()) / sc
    got = L.dist_to_origin(m, c).double()
    torch.testing.assert_close(sc * got, sc * expect, rtol=tol, atol=tol)


@FEW
@given(seed=seeds, d=dims, c=curvs)
def test_midpoint_of_one_point_and_batched(seed, d, c):
    x = L.exp_map0(tangent(seed, 4, d, c, 5.0, torch.float64), c)
    torch.testing.assert_close(L.midpoint(x[:1], c), x[0])
    stacked = torch.stack([x, x.flip(0)])
    mb = L.midpoint(stacked, c)
    torch.testing.assert_close(mb[0], L.midpoint(x, c))
    torch.testing.assert_close(mb[1], L.midpoint(x, c))


@PROPS
@given(seed=seeds, d=st.integers(2, 6), c=st.floats(1e-9, 1e-7))
def test_small_curvature_limit_is_euclidean(seed, d, c):
    x, y, r = (randn(seed + k, 6, d) for k in (0, 3, 5))
    torch.testing.assert_close(L.dist(x, y, c), E.dist(x, y), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        L.pairwise_dist(x, y, c), E.pairwise_dist(x, y), rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(L.ext_angle(x, y, c), E.ext_angle(x, y), rtol=0, atol=1e-4)
    torch.testing.assert_close(
        L.pairwise_ext_angle(x, y, c), E.pairwise_ext_angle(x, y), rtol=0, atol=1e-4
    )
    torch.testing.assert_close(
        L.ext_angle_from(r, x, y, c), E.ext_angle_from(r, x, y), rtol=0, atol=1e-3
    )
    torch.testing.assert_close(L.midpoint(x, c), E.midpoint(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(L.dist_to_origin(x, c), E.dist_to_origin(x), rtol=1e-5, atol=0)


def test_small_curvature_limit_float32():
    x, y = randn(1, 16, 5, dtype=torch.float32), randn(2, 16, 5, dtype=torch.float32)
    c = 1e-4
    torch.testing.assert_close(L.dist(x, y, c), E.dist(x, y), rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(L.ext_angle(x, y, c), E.ext_angle(x, y), rtol=0, atol=1e-2)
    torch.testing.assert_close(L.midpoint(x, c), E.midpoint(x), rtol=2e-3, atol=2e-3)


@PROPS
@given(seed=seeds, d=dims, c=curvs, k=st.floats(0.01, 1.0))
def test_half_aperture_formula(seed, d, c, k):
    x = randn(seed, 8, d, scale=3.0)
    expect = torch.asin(torch.clamp(2 * k / (math.sqrt(c) * x.norm(dim=-1)), max=1.0))
    got = L.half_aperture(x, c, min_radius=k)
    torch.testing.assert_close(got, expect, rtol=0, atol=2e-6)
    # monotone: farther from the origin -> narrower cone
    assert bool((L.half_aperture(2 * x, c, min_radius=k) <= got + 1e-12).all())


def test_exp_map_caps_sinh_input():
    v = torch.tensor([[1e4, 0.0], [0.0, 0.0]])
    x = L.exp_map0(v, 1.0)
    assert torch.isfinite(x).all()
    assert float(x[0].norm()) <= 2.0**15 * 1.0001
    assert float(x[1].abs().max()) == 0.0


def test_float32_accuracy_for_close_points_near_origin():
    """u = z - 1 is computed directly, so nearby points near O keep their distance and angle."""
    v = randn(11, 8, 6, dtype=torch.float32)
    v = v / v.norm(dim=-1, keepdim=True) * 1e-3
    x, beyond = L.exp_map0(v, 1.0), L.exp_map0(1.3 * v, 1.0)
    torch.testing.assert_close(L.dist(x, beyond, 1.0), torch.full((8,), 3e-4), rtol=1e-2, atol=0)
    torch.testing.assert_close(L.ext_angle(x, beyond, 1.0), torch.zeros(8), rtol=0, atol=1e-2)
    torch.testing.assert_close(
        L.ext_angle(beyond, x, 1.0), torch.full((8,), math.pi), rtol=0, atol=1e-2
    )
    # coincident points: the undefined angle reads pi/2 and has zero gradient
    xg = x.clone().requires_grad_(True)
    ang = L.ext_angle(xg, x, 1.0)
    ang.sum().backward()
    torch.testing.assert_close(ang, torch.full((8,), math.pi / 2))
    assert float(xg.grad.abs().max()) == 0.0


def test_dist_exactly_symmetric_float32():
    """u(x, y) is computed symmetrically: d(x, y) == d(y, x) bit for bit, pairwise too
    (regression: hypothesis found a 4e-3 asymmetry for nearby points in float32)."""
    torch.manual_seed(0)
    c = 0.333984375
    x = L.exp_map0(torch.randn(256, 1) * 2, c)
    y = L.exp_map0(torch.randn(256, 1) * 2, c)
    assert torch.equal(L.dist(x, y, c), L.dist(y, x, c))
    assert torch.equal(L.pairwise_dist(x, y, c), L.pairwise_dist(y, x, c).T)
