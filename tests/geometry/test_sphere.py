"""Tests of the sphere geometry (CLIP)."""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from clipspace.geometry import euclidean as E
from clipspace.geometry import sphere as S
from tests.helpers.geometry import PROPS, TOL, dtypes, log_scales, randn, seeds


@PROPS
@given(seed=seeds, d=st.integers(2, 8), dtype=dtypes, s=log_scales)
def test_exp_map_normalises_and_geodesic_metric(seed, d, dtype, s):
    x, y, z = (S.exp_map0(randn(seed + k, 8, d, dtype=dtype, scale=10**s)) for k in (0, 1, 2))
    tol = TOL[dtype]
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(8, dtype=dtype))
    assert x.dtype == dtype
    torch.testing.assert_close(S.log_map0(x), x)
    cos = (x.double() * y.double()).sum(-1).clamp(-1, 1)
    atol = 1e-5 if dtype == torch.float64 else 3e-3
    torch.testing.assert_close(S.dist(x, y).double(), torch.acos(cos), rtol=0, atol=atol)
    torch.testing.assert_close(S.dist(x, y), S.dist(y, x))
    assert bool((S.dist(x, z) <= S.dist(x, y) + S.dist(y, z) + 10 * tol).all())
    assert bool((S.dist(x, y) <= math.pi).all())
    torch.testing.assert_close(S.pairwise_inner(x, y), x @ y.T)
    torch.testing.assert_close(S.pairwise_sqdist(x, y), S.pairwise_dist(x, y) ** 2)


@PROPS
@given(seed=seeds, d=st.integers(2, 8), n=st.integers(1, 10))
def test_midpoint_and_root_are_normalised_mean(seed, d, n):
    x = S.exp_map0(randn(seed, n, d))
    m = x.mean(0)
    torch.testing.assert_close(S.midpoint(x), m / m.norm())
    torch.testing.assert_close(S.default_root(x), m / m.norm())
    torch.testing.assert_close(S.default_root(x[None]), m / m.norm())
    assert not S.HAS_ORIGIN


@PROPS
@given(seed=seeds, d=st.integers(2, 8))
def test_angles_use_ambient_euclidean_formulas(seed, d):
    r, x, y = (S.exp_map0(randn(seed + k, 6, d)) for k in (0, 1, 2))
    torch.testing.assert_close(S.ext_angle_from(r, x, y), E.ext_angle_from(r, x, y))
    torch.testing.assert_close(S.ext_angle(x, y), E.ext_angle(x, y))
    torch.testing.assert_close(S.pairwise_ext_angle(x, y), E.pairwise_ext_angle(x, y))
    torch.testing.assert_close(S.dist_to_origin(x), torch.ones(6, dtype=x.dtype))
    # x on the unit sphere: aperture asin(K)
    torch.testing.assert_close(
        S.half_aperture(x, min_radius=0.1), torch.full((6,), math.asin(0.1), dtype=x.dtype)
    )
