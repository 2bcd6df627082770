"""ATMG propositions in H^2: the constructions against closed forms and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clipspace.analysis import propositions as P
from clipspace.geometry import lorentz


@pytest.mark.parametrize("curv", [0.1, 1.0, 10.0])
def test_anchor_and_circle_points_have_the_stated_distances_and_angles(curv: float) -> None:
    rho, delta = 1.3 / math.sqrt(curv), 0.7 / math.sqrt(curv)
    x = P.anchor(rho, curv)
    assert float(lorentz.dist_to_origin(x[None], curv)[0]) == pytest.approx(rho, rel=1e-9)
    theta = torch.tensor([0.0, 0.4, -1.2, 2.9, -3.0], dtype=torch.float64)
    y = P.circle_points(rho, delta, theta, curv)
    xs = x[None].expand_as(y)
    assert lorentz.dist(xs, y, curv).numpy() == pytest.approx(np.full(5, delta), rel=1e-7)
    # theta is measured from the outward ray O -> x: the exterior angle at x is |theta|
    assert lorentz.ext_angle(xs, y, curv).numpy() == pytest.approx(theta.abs().numpy(),
                                                                   abs=1e-5)


def test_boost_is_an_isometry_moving_the_origin_to_the_anchor() -> None:
    gen = torch.Generator().manual_seed(0)
    pts = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    moved = P.boost(pts, 0.9, 2.0)
    before = lorentz.pairwise_dist(pts, pts, 2.0)
    after = lorentz.pairwise_dist(moved, moved, 2.0)
    assert after.numpy() == pytest.approx(before.numpy(), abs=1e-9)
    origin = P.boost(torch.zeros(1, 2, dtype=torch.float64), 0.9, 2.0)
    assert origin[0].numpy() == pytest.approx(P.anchor(0.9, 2.0).numpy())


@pytest.mark.parametrize("rho", [0.3, 1.0, 2.5])
def test_half_aperture_matches_the_meru_formula(rho: float) -> None:
    expected = math.asin(min(1.0, 2 * P.MIN_RADIUS / math.sinh(rho)))  # c = 1: |x| = sinh(rho)
    assert P.half_aperture_at(rho, 1.0) == pytest.approx(expected, rel=1e-6)


def test_law_of_cosines_objective_equals_the_geometry_distances() -> None:
    theta = torch.tensor([0.1, 1.0, 2.2, -2.0, 3.1], dtype=torch.float64)
    for curv in (0.1, 1.0, 10.0):
        pts = P.circle_points(0.8, 1.1, theta, curv)
        assert float(P.circle_pairwise_sum(theta, 1.1, curv)) == pytest.approx(
            float(P.pairwise_sum(pts, curv)), rel=1e-7)


def test_two_points_spread_to_opposite_sides_and_leave_the_cone() -> None:
    s = P.spread_on_circle(2, rho=1.0, delta=0.8, curv=1.0)
    gap = abs(s.theta[0] - s.theta[1]) % (2 * math.pi)
    assert gap == pytest.approx(math.pi, abs=1e-3)
    assert s.inside < 1.0
    assert np.all(np.abs(s.theta0) <= s.psi / 2)  # the start was inside the cone


@pytest.mark.parametrize("n", [3, 8])
def test_free_optimum_is_evenly_spaced_and_beats_the_in_cone_optimum(n: int) -> None:
    free = P.spread_on_circle(n, rho=1.0, delta=1.0, curv=1.0)
    held = P.spread_on_circle(n, rho=1.0, delta=1.0, curv=1.0, within_cone=True)
    even = float(P.circle_pairwise_sum(torch.arange(n, dtype=torch.float64) * 2 * math.pi / n,
                                       1.0, 1.0))
    assert free.objective == pytest.approx(even, rel=1e-3)
    assert held.inside == 1.0 and np.all(np.abs(held.theta) <= held.psi + 1e-12)
    assert free.objective > 2 * held.objective
    assert free.inside <= 1.0 / n + 1e-12  # psi < pi / n: at most one evenly spaced point fits


def test_spread_needs_two_points() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        P.spread_on_circle(1, 1.0, 1.0, 1.0)


@pytest.mark.parametrize(("curv", "rho", "delta"), [(1.0, 1.0, 0.5), (1.0, 2.0, 3.0),
                                                     (0.1, 3.0, 4.0), (10.0, 0.4, 0.9)])
def test_monte_carlo_cone_area_matches_the_closed_form(curv: float, rho: float,
                                                       delta: float) -> None:
    est, se = P.cone_area_mc(rho, delta, curv, samples=100_000, seed=1)
    closed = float(P.cone_area(delta, P.half_aperture_at(rho, curv), curv))
    assert abs(est - closed) <= 4 * se
    assert se < 0.1 * closed


def test_closed_form_is_the_polar_integral() -> None:
    from scipy.integrate import quad

    psi, curv, delta = 0.3, 2.0, 1.7
    radial, _ = quad(lambda s: math.sinh(math.sqrt(curv) * s) / math.sqrt(curv), 0, delta)
    assert float(P.cone_area(delta, psi, curv)) == pytest.approx(2 * psi * radial, rel=1e-9)


def test_ball_box_contains_the_ball() -> None:
    lo, hi = P.ball_box(1.5, 2.0, 1.0)
    gen = torch.Generator().manual_seed(3)
    theta = torch.rand(500, generator=gen, dtype=torch.float64) * 2 * math.pi
    radius = torch.rand(500, generator=gen, dtype=torch.float64) * 2.0
    pts = P.circle_points(1.5, radius, theta, 1.0).numpy()
    assert np.all(pts >= lo) and np.all(pts <= hi)


def test_exp_rate_recovers_the_exponent_and_bounds_the_cone_slope() -> None:
    d = np.linspace(1.0, 5.0, 9)
    assert P.exp_rate(d, 3.0 * np.exp(1.7 * d)) == pytest.approx(1.7)
    # the closed form's log-slope lies between sqrt(c) and sqrt(c) coth(sqrt(c) d_lo / 2)
    curv = 4.0
    rate = P.exp_rate(d, P.cone_area(d, 0.2, curv))
    assert 2.0 < rate < 2.0 / math.tanh(2.0 * d[0] / 2)
