"""Contract tests shared by all geometries: names, pairwise == row-wise, degenerate inputs,
autocast/dtype policy, gradcheck, and O(B1 B2) memory for pairwise functions."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from clipspace.geometry import GEOMETRIES, euclidean, get_geometry, lorentz, sphere
from tests.helpers.geometry import PROPS, dtypes, randn, seeds

NAMES = [
    "exp_map0", "log_map0", "pairwise_inner", "pairwise_dist", "pairwise_sqdist", "dist",
    "dist_to_origin", "half_aperture", "ext_angle", "pairwise_ext_angle", "midpoint",
    "ext_angle_from", "default_root", "HAS_ORIGIN",
]  # fmt: skip
GEOMS = ["sphere", "euclidean", "lorentz"]


def test_registry_and_names():
    assert set(GEOMETRIES) == set(GEOMS)
    assert get_geometry("lorentz") is lorentz and get_geometry(sphere) is sphere
    for g in GEOMETRIES.values():
        for name in NAMES:
            assert hasattr(g, name), (g.__name__, name)
    assert (sphere.HAS_ORIGIN, euclidean.HAS_ORIGIN, lorentz.HAS_ORIGIN) == (False, True, True)
    with pytest.raises(ValueError, match="unknown geometry"):
        get_geometry("poincare")


def points(g, seed: int, n: int, d: int, c: float, dtype) -> torch.Tensor:
    v = randn(seed, n, d)
    if g is lorentz:  # moderate radii: sqrt(c) d(O, x) <= ~2.5
        v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-3) * (0.2 + (seed % 5) / 2.0)
        v = v / math.sqrt(c)
    return g.exp_map0(v.to(dtype), c)


def rowwise_inner(g, x, y, c):
    return lorentz.inner(x, y, c) if g is lorentz else (x * y).sum(-1)


@PROPS
@pytest.mark.parametrize("name", GEOMS)
@given(seed=seeds, d=st.integers(2, 6), b1=st.integers(1, 5), b2=st.integers(1, 5),
       c=st.floats(0.05, 20.0), dtype=dtypes)  # fmt: skip
def test_pairwise_equals_rowwise(name, seed, d, b1, b2, c, dtype):
    g = get_geometry(name)
    x, y = points(g, seed, b1, d, c, dtype), points(g, seed + 1, b2, d, c, dtype)
    xi = x[:, None, :].expand(b1, b2, d).reshape(-1, d)
    yj = y[None, :, :].expand(b1, b2, d).reshape(-1, d)
    tol = 1e-9 if dtype == torch.float64 else 1e-3

    def check(pair, row):
        assert pair.shape == (b1, b2) and pair.dtype == dtype
        torch.testing.assert_close(pair.reshape(-1), row, rtol=tol, atol=tol)

    check(g.pairwise_dist(x, y, c), g.dist(xi, yj, c))
    check(g.pairwise_sqdist(x, y, c), g.dist(xi, yj, c) ** 2)
    check(g.pairwise_inner(x, y, c), rowwise_inner(g, xi, yj, c))
    check(g.pairwise_ext_angle(x, y, c), g.ext_angle(xi, yj, c))


# --------------------------------------------------------------------------- degenerate inputs
def _unit(seed, n, d):
    v = randn(seed, n, d, dtype=torch.float32)
    return v / v.norm(dim=-1, keepdim=True)


D = 5
CASES = {
    "identical": lambda: (_unit(0, 4, D) * 2, _unit(0, 4, D) * 2),
    "zero_x": lambda: (torch.zeros(4, D), _unit(1, 4, D)),
    "zero_y": lambda: (_unit(1, 4, D), torch.zeros(4, D)),
    "both_zero": lambda: (torch.zeros(4, D), torch.zeros(4, D)),
    "tiny": lambda: (_unit(2, 4, D) * 1e-6, _unit(3, 4, D) * 1e-6),
    "huge": lambda: (_unit(2, 4, D) * 1e4, _unit(3, 4, D) * 1e4),
    "tiny_huge": lambda: (_unit(2, 4, D) * 1e-6, _unit(3, 4, D) * 1e4),
    "huge_same": lambda: (_unit(2, 4, D) * 1e4, _unit(2, 4, D) * 1e4),
    "ray": lambda: (_unit(2, 4, D), _unit(2, 4, D) * 3),
    "batch1": lambda: (_unit(4, 1, D), _unit(5, 1, D)),
}


def _calls(g, x, y, c):
    """Every geometry function applied to (x, y, c)."""
    return {
        "exp_map0": g.exp_map0(x, c),
        "log_map0": g.log_map0(x, c),
        "pairwise_inner": g.pairwise_inner(x, y, c),
        "pairwise_dist": g.pairwise_dist(x, y, c),
        "pairwise_sqdist": g.pairwise_sqdist(x, y, c),
        "dist": g.dist(x, y, c),
        "dist_to_origin": g.dist_to_origin(x, c),
        "half_aperture": g.half_aperture(x, c),
        "ext_angle": g.ext_angle(x, y, c),
        "pairwise_ext_angle": g.pairwise_ext_angle(x, y, c),
        "midpoint": g.midpoint(x, c),
        "ext_angle_from": g.ext_angle_from(y[0], x, y, c),
        "ext_angle_from_x": g.ext_angle_from(x, x, y, c),
        "exp_then_dist": g.pairwise_dist(g.exp_map0(x, c), g.exp_map0(y, c), c),
        "exp_then_angle": g.ext_angle(g.exp_map0(x, c), g.exp_map0(y, c), c),
        "exp_then_mid": g.midpoint(g.exp_map0(x, c), c),
    }


def _check_finite(g, x0, y0, c0, dtype, autocast):
    x = x0.to(dtype).requires_grad_(True)
    y = y0.to(dtype).requires_grad_(True)
    c = torch.tensor(c0, requires_grad=True)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast(
        "cpu", enabled=False
    )
    with ctx:
        outs = _calls(g, x, y, c)
    for fname, out in outs.items():
        assert out.dtype == torch.float32, fname
        assert torch.isfinite(out).all(), (fname, out)
        gx, gy, gc = torch.autograd.grad(out.sum(), (x, y, c), allow_unused=True)
        for grad in (gx, gy, gc):
            assert grad is None or torch.isfinite(grad).all(), (fname, gx, gy, gc)
            # no 1/eps blow-ups at undefined points (largest legit grads: d/dc at |x| = 1e4)
            assert grad is None or float(grad.abs().max()) < 1e9, (fname, gx, gy, gc)


@pytest.mark.parametrize("name", GEOMS)
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("curv", [0.01, 1.0, 100.0])
def test_degenerate_inputs_finite_float32(name, case, curv):
    x, y = CASES[case]()
    _check_finite(get_geometry(name), x, y, curv, torch.float32, autocast=False)


@pytest.mark.parametrize("name", GEOMS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_degenerate_inputs_finite_bf16_autocast(name, case):
    x, y = CASES[case]()
    for curv in (0.01, 100.0):
        _check_finite(get_geometry(name), x, y, curv, torch.bfloat16, autocast=True)


@pytest.mark.parametrize("name", GEOMS)
def test_autocast_is_disabled_inside(name):
    """Under bf16 autocast a matmul would run in bf16 (~1e-2 error); we must match float32."""
    g = get_geometry(name)
    x = points(g, 0, 32, 64, 1.0, torch.float32)
    y = points(g, 1, 32, 64, 1.0, torch.float32)
    ref = g.pairwise_dist(x, y, 1.0), g.pairwise_ext_angle(x, y, 1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (x @ y.T).dtype == torch.bfloat16  # autocast is really on
        got = g.pairwise_dist(x, y, 1.0), g.pairwise_ext_angle(x, y, 1.0)
    for r, o in zip(ref, got):
        assert o.dtype == torch.float32
        torch.testing.assert_close(o, r, rtol=1e-6, atol=1e-6)
    assert g.dist(x.double(), y.double(), 1.0).dtype == torch.float64
    assert g.dist(x.half(), y.bfloat16(), 1.0).dtype == torch.float32
    # a float64 curvature tensor does not promote float32 points
    assert g.dist(x, y, torch.tensor(1.0, dtype=torch.float64)).dtype == torch.float32


# --------------------------------------------------------------------------- gradcheck
@pytest.mark.parametrize("name", GEOMS)
def test_gradcheck_float64(name):
    g = get_geometry(name)
    x = points(g, 3, 3, 4, 0.7, torch.float64).detach().requires_grad_(True)
    y = points(g, 4, 3, 4, 0.7, torch.float64).detach().requires_grad_(True)
    r = points(g, 5, 1, 4, 0.7, torch.float64)[0].detach().requires_grad_(True)
    v = (randn(6, 3, 4) * 0.8).requires_grad_(True)
    c = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    checks = {
        "dist": (lambda a, b, k: g.dist(a, b, k), (x, y, c)),
        "pairwise_dist": (lambda a, b, k: g.pairwise_dist(a, b, k), (x, y, c)),
        "pairwise_sqdist": (lambda a, b, k: g.pairwise_sqdist(a, b, k), (x, y, c)),
        "ext_angle": (lambda a, b, k: g.ext_angle(a, b, k), (x, y, c)),
        "pairwise_ext_angle": (lambda a, b, k: g.pairwise_ext_angle(a, b, k), (x, y, c)),
        "ext_angle_from": (lambda q, a, b, k: g.ext_angle_from(q, a, b, k), (r, x, y, c)),
        "midpoint": (lambda a, k: g.midpoint(a, k), (x, c)),
        "exp_map0": (lambda a, k: g.exp_map0(a, k), (v, c)),
        "log_map0": (lambda a, k: g.log_map0(a, k), (x, c)),
        "dist_to_origin": (lambda a, k: g.dist_to_origin(a, k), (x, c)),
    }
    for fname, (fn, args) in checks.items():
        assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-5), fname


# --------------------------------------------------------------------------- memory
class _MaxNumel(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        return out


@pytest.mark.parametrize("name", GEOMS)
@pytest.mark.parametrize(
    "fname", ["pairwise_inner", "pairwise_dist", "pairwise_sqdist", "pairwise_ext_angle"]
)
def test_pairwise_never_builds_b1_b2_d(name, fname):
    g = get_geometry(name)
    b1, b2, d = 16, 12, 64
    x = points(g, 0, b1, d, 1.0, torch.float32).detach().requires_grad_(True)
    y = points(g, 1, b2, d, 1.0, torch.float32).detach().requires_grad_(True)
    with _MaxNumel() as mode:
        out = getattr(g, fname)(x, y, 1.0)
        out.sum().backward()
    assert out.shape == (b1, b2)
    assert mode.max_numel <= max(b1 * d, b2 * d, b1 * b2) < b1 * b2 * d


@pytest.mark.parametrize("name", GEOMS)
def test_rowwise_functions_broadcast_a_single_root(name):
    """dist(points, root) with root of shape (D,) (used by hierarchy metrics) broadcasts."""
    g = get_geometry(name)
    x = points(g, 0, 6, 4, 0.5, torch.float64)
    r = points(g, 1, 1, 4, 0.5, torch.float64)[0]
    full_r = r.expand_as(x)
    torch.testing.assert_close(g.dist(x, r, 0.5), g.dist(x, full_r, 0.5))
    torch.testing.assert_close(g.ext_angle(x, r, 0.5), g.ext_angle(x, full_r, 0.5))
    torch.testing.assert_close(g.ext_angle_from(r, x, x.flip(0), 0.5),
                               g.ext_angle_from(full_r, x, x.flip(0), 0.5))  # fmt: skip
    assert g.default_root(x, 0.5).shape == (4,)
