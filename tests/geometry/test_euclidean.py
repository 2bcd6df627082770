"""Property tests of the Euclidean geometry (REFERENCE.md section 1)."""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from clipspace.geometry import euclidean as E
from tests.helpers.geometry import PROPS, TOL, dims, dtypes, log_scales, randn, seeds


@PROPS
@given(seed=seeds, d=dims, dtype=dtypes, s=log_scales)
def test_ext_angle_equals_ganea_law_of_cosines(seed, d, dtype, s):
    """Ganea et al. 2018: Xi(x,y) = acos((|y|^2 - |x|^2 - |x-y|^2) / (2 |x| |x-y|))."""
    x, y = randn(seed, 8, d, scale=10**s), randn(seed + 1, 8, d, scale=10**s)
    nx, ny, nxy = x.norm(dim=-1), y.norm(dim=-1), (x - y).norm(dim=-1)
    ganea = torch.acos(((ny**2 - nx**2 - nxy**2) / (2 * nx * nxy)).clamp(-1, 1))
    got = E.ext_angle(x.to(dtype), y.to(dtype)).double()
    atol = 1e-5 if dtype == torch.float64 else 3e-3
    torch.testing.assert_close(got, ganea, rtol=0, atol=atol)


@PROPS
@given(seed=seeds, d=dims, dtype=dtypes, a=st.floats(1.1, 5.0), b=st.floats(0.0, 0.9))
def test_ext_angle_on_ray(seed, d, dtype, a, b):
    x = randn(seed, 6, d, dtype=dtype)
    zero = torch.zeros(6, dtype=dtype)
    atol = 1e-5 if dtype == torch.float64 else 3e-3
    torch.testing.assert_close(E.ext_angle(x, a * x), zero, rtol=0, atol=atol)
    torch.testing.assert_close(E.ext_angle(x, b * x), zero + math.pi, rtol=0, atol=atol)


@PROPS
@given(seed=seeds, d=dims, dtype=dtypes)
def test_dist_symmetric_triangle_and_gram_sqdist(seed, d, dtype):
    x, y, z = (randn(seed + k, 8, d, dtype=dtype) for k in (0, 1, 2))
    tol = TOL[dtype]
    torch.testing.assert_close(E.dist(x, y), E.dist(y, x))
    assert bool((E.dist(x, z) <= E.dist(x, y) + E.dist(y, z) + tol).all())
    diff = x[:, None, :] - y[None, :, :]
    torch.testing.assert_close(E.pairwise_sqdist(x, y), (diff**2).sum(-1), rtol=tol, atol=tol)
    assert bool((E.pairwise_sqdist(x, x) >= 0).all())


@PROPS
@given(seed=seeds, d=dims, dtype=dtypes)
def test_ext_angle_from_is_pi_minus_interior_angle(seed, d, dtype):
    r, x, y = (randn(seed + k, 8, d, dtype=torch.float64) for k in (0, 1, 2))
    a, b = r - x, y - x
    interior = torch.acos((a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)))
    got = E.ext_angle_from(r.to(dtype), x.to(dtype), y.to(dtype)).double()
    atol = 1e-5 if dtype == torch.float64 else 3e-3
    torch.testing.assert_close(got, math.pi - interior, rtol=0, atol=atol)
    # root = origin gives ext_angle
    o = torch.zeros(d, dtype=dtype)
    torch.testing.assert_close(E.ext_angle_from(o, x.to(dtype), y.to(dtype)), E.ext_angle(
        x.to(dtype), y.to(dtype)))


@PROPS
@given(seed=seeds, d=dims, k=st.floats(0.01, 1.0))
def test_maps_midpoint_aperture_root(seed, d, k):
    x = randn(seed, 7, d)
    torch.testing.assert_close(E.exp_map0(x), x)
    torch.testing.assert_close(E.log_map0(x), x)
    torch.testing.assert_close(E.midpoint(x), x.mean(0))
    torch.testing.assert_close(E.dist_to_origin(x), x.norm(dim=-1))
    expect = torch.asin(torch.clamp(k / x.norm(dim=-1), max=1.0))
    torch.testing.assert_close(E.half_aperture(x, min_radius=k), expect, rtol=0, atol=2e-6)
    assert torch.equal(E.default_root(x), torch.zeros(d, dtype=x.dtype))
    assert E.HAS_ORIGIN
