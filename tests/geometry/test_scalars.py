"""Tests of the learnable geometry scalars and the feature -> point map."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from clipspace.geometry import euclidean, lorentz, sphere
from clipspace.geometry.scalars import Curvature, EmbedScale, LogitScale, PointMap
from tests.helpers.geometry import FEW


@FEW
@given(init=st.floats(0.01, 1000.0), lo=st.floats(0.05, 1.0), hi=st.floats(1.0, 50.0))
def test_curvature_clamped_to_range(init, lo, hi):
    c = Curvature(init, min=lo, max=hi)
    val = c()
    assert val.dim() == 0 and val.dtype == torch.float32
    assert lo * (1 - 1e-6) <= float(val) <= hi * (1 + 1e-6)
    if lo <= init <= hi:
        assert math.isclose(float(val), init, rel_tol=1e-5)
    # optimisation steps that push log c far out stay clamped
    with torch.no_grad():
        c.log_value.fill_(100.0)
    assert math.isclose(float(c()), hi, rel_tol=1e-5)
    with torch.no_grad():
        c.log_value.fill_(-100.0)
    assert math.isclose(float(c()), lo, rel_tol=1e-5)


def test_learnable_and_fixed_scalars():
    for mod in (Curvature(1.0), EmbedScale(0.1), LogitScale()):
        assert mod.log_value.requires_grad
        mod().backward()
        assert mod.log_value.grad is not None and torch.isfinite(mod.log_value.grad)
    for mod in (Curvature(0.1, learnable=False), EmbedScale(0.1, False), LogitScale(1.0, False)):
        assert not mod.log_value.requires_grad
        assert not mod().requires_grad
    with pytest.raises(ValueError):
        Curvature(1.0, min=0.0)
    with pytest.raises(ValueError):
        LogitScale(-1.0)


@FEW
@given(init=st.floats(0.001, 1e4))
def test_logit_and_embed_scales_capped(init):
    s, a = LogitScale(init), EmbedScale(init)
    assert float(s()) <= 100.0 * (1 + 1e-6)
    assert float(a()) <= 1.0 + 1e-6
    assert math.isclose(float(s()), min(init, 100.0), rel_tol=1e-5)
    assert math.isclose(float(a()), min(init, 1.0), rel_tol=1e-5)
    assert math.isclose(float(LogitScale()()), 1 / 0.07, rel_tol=1e-5)


@FEW
@given(seed=st.integers(0, 10_000), dim=st.integers(2, 16), scale=st.floats(1e-3, 1e3),
       curv=st.floats(0.1, 10.0))  # fmt: skip
def test_point_map_on_manifold(seed, dim, scale, curv):
    f = torch.randn(5, dim, generator=torch.Generator().manual_seed(seed)) * scale
    pts = PointMap("sphere", dim)(f, curv)
    torch.testing.assert_close(pts.norm(dim=-1), torch.ones(5))
    pm = PointMap("euclidean", dim, "sqrt_dim")
    torch.testing.assert_close(pm(f), f / math.sqrt(dim))
    pm = PointMap(lorentz, dim, "alpha")
    assert pm.alpha is not None
    torch.testing.assert_close(pm.tangent(f), f / math.sqrt(dim))  # alpha init 1/sqrt(D)
    x = pm(f, torch.tensor(curv))
    assert torch.isfinite(x).all()
    # on the hyperboloid: log map inverts, dist to O equals the tangent norm
    v = pm.tangent(f).double()
    xd = x.double()
    xt = torch.sqrt(1 / curv + (xd * xd).sum(-1))
    assert bool(((((xd * xd).sum(-1) - xt**2) * curv + 1).abs() <= 1e-6 * curv * xt**2).all())
    torch.testing.assert_close(
        lorentz.dist_to_origin(xd, curv), v.norm(dim=-1).clamp_max(math.asinh(2**15) / curv**0.5),
        rtol=1e-3, atol=1e-3,
    )  # fmt: skip


def test_point_map_modes_and_autocast():
    f = torch.randn(4, 8)
    assert PointMap(euclidean, 8).alpha is None
    torch.testing.assert_close(PointMap(euclidean, 8, "none")(f), f)
    pm = PointMap(sphere, 8, "alpha", learn_alpha=False)
    assert pm.alpha is not None and not pm.alpha.log_value.requires_grad
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = PointMap(lorentz, 8, "alpha")(f.bfloat16(), 1.0)
    assert out.dtype == torch.float32
    with pytest.raises(ValueError):
        PointMap(lorentz, 8, "bogus")
    with pytest.raises(ValueError):
        PointMap("hyperbolic", 8)
    # alpha is learnable through the map
    pm = PointMap(lorentz, 8, "alpha")
    pm(f, 1.0).sum().backward()
    assert pm.alpha is not None and pm.alpha.log_value.grad is not None
