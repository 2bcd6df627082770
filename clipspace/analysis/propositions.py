"""ATMG (Ramasinghe et al., CVPR 2024, Sec. 3) Propositions 1 and 2, checked numerically in H^2.

Setting: the hyperbolic plane of curvature -c in the Lorentz model of ``geometry.lorentz`` (a
point is stored by its space part y in R^2; O is the origin). A text embedding x sits at
distance rho from O on the first axis; its entailment cone (MERU / Ganea et al.) is
cone(x) = {y : ext_angle(x, y) <= psi(x)}, psi(x) = asin(min(1, 2K / (sqrt(c) |x|))), K = 0.1,
where ext_angle(x, y) is the angle at x between the outward ray O->x and the geodesic x->y.
In geodesic polar coordinates (delta, theta) around x, with theta measured from that outward
ray, the cone is the sector |theta| <= psi(x).

* Proposition 1 (points at equal distance from x, spread to maximise their pairwise distances,
  leave x's cone): ``spread_on_circle`` places n points at distance delta from x, starting
  clumped inside the cone, and maximises sum_{i<j} d(y_i, y_j) over their angles by gradient
  ascent; ``cone_fraction`` is the share of the optimum inside cone(x) (measured with
  ``lorentz.ext_angle`` and ``lorentz.half_aperture``). The best in-cone configuration
  (angles held in [-psi, psi]) is computed the same way for comparison.
* Proposition 2 (the volume available inside the cone shrinks exponentially as the largest
  distance shrinks): V(delta) = area{y : d(x, y) <= delta, y in cone(x)} has the closed form
  2 psi (cosh(sqrt(c) delta) - 1) / c (area element sinh(sqrt(c) s) / sqrt(c) ds dtheta), so
  V(delta - D) / V(delta) -> exp(-sqrt(c) D). ``cone_area_mc`` estimates V by Monte Carlo in the
  space-part coordinates (area element dy / sqrt(1 + c |y|^2), the induced metric of the
  hyperboloid graph y_t = sqrt(1/c + |y|^2)), independently of the polar formula.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from clipspace.geometry import lorentz

MIN_RADIUS = 0.1  # K of the MERU cone (``lorentz.half_aperture``'s default)


def anchor(rho: float, curv: float) -> Tensor:
    """Space part (2,) of the point at distance rho from O on the first axis:
    sinh(sqrt(c) rho) / sqrt(c) e_1 (float64)."""
    sc = math.sqrt(curv)
    return torch.tensor([math.sinh(sc * rho) / sc, 0.0], dtype=torch.float64)


def boost(points: Tensor, rho: float, curv: float) -> Tensor:
    """The isometry of H^2 that moves O to ``anchor(rho)`` along the first axis: a Lorentz boost
    of rapidity a = sqrt(c) rho on scaled coordinates (X0, X1, X2) = sqrt(c) (y_t, y):
    X0' = cosh(a) X0 + sinh(a) X1, X1' = sinh(a) X0 + cosh(a) X1, X2' = X2. (N, 2) -> (N, 2)."""
    sc = math.sqrt(curv)
    y = points.to(torch.float64)
    x0 = torch.sqrt(1.0 + curv * (y * y).sum(-1))
    x1, x2 = sc * y[:, 0], sc * y[:, 1]
    a = sc * rho
    x1b = math.sinh(a) * x0 + math.cosh(a) * x1
    return torch.stack([x1b, x2], dim=-1) / sc


def circle_points(rho: float, delta: float | Tensor, theta: Tensor, curv: float) -> Tensor:
    """(N, 2) points at geodesic distance delta from x = anchor(rho), at angle theta from x's
    outward ray (the cone axis): exp_map0(delta (cos theta, sin theta)) moved by ``boost``."""
    theta = theta.to(torch.float64)
    d = torch.as_tensor(delta, dtype=torch.float64)
    v = torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1) * d.reshape(-1, 1)
    return boost(lorentz.exp_map0(v, curv), rho, curv)


def half_aperture_at(rho: float, curv: float) -> float:
    """psi(x) of x = anchor(rho): ``lorentz.half_aperture`` with K = MIN_RADIUS."""
    x = anchor(rho, curv)[None]
    return float(lorentz.half_aperture(x, curv, MIN_RADIUS)[0])


def cone_fraction(rho: float, points: Tensor, curv: float) -> float:
    """Share of ``points`` (N, 2) inside cone(anchor(rho)): ext_angle(x, y) <= psi(x)."""
    x = anchor(rho, curv)[None].expand(points.shape[0], 2)
    inside = lorentz.ext_angle(x, points, curv) <= half_aperture_at(rho, curv) + 1e-9
    return float(inside.double().mean())


def pairwise_sum(points: Tensor, curv: float) -> Tensor:
    """sum_{i<j} d(y_i, y_j) (the objective of Proposition 1)."""
    d = lorentz.pairwise_dist(points, points, curv)
    return torch.triu(d, diagonal=1).sum()


@dataclass
class Spread:
    """Result of one Proposition-1 optimisation."""

    theta: np.ndarray  # optimised angles from the cone axis
    theta0: np.ndarray  # clumped start (inside the cone)
    objective: float  # sum of pairwise distances at the optimum
    inside: float  # share of the optimum inside cone(x)
    psi: float  # half-aperture of x


def circle_pairwise_sum(theta: Tensor, delta: float, curv: float) -> Tensor:
    """sum_{i<j} d(y_i, y_j) for points at distance delta from a common centre at angles
    theta, by the hyperbolic law of cosines: cosh(sqrt(c) d_ij) = cosh^2(a) - sinh^2(a)
    cos(theta_i - theta_j), a = sqrt(c) delta (the optimiser's objective; ``pairwise_sum`` of
    ``circle_points`` gives the same value with ``geometry.lorentz``)."""
    a = math.sqrt(curv) * delta
    diff = theta[:, None] - theta[None, :]
    z = math.cosh(a) ** 2 - math.sinh(a) ** 2 * torch.cos(diff)
    i, j = torch.triu_indices(len(theta), len(theta), offset=1)
    return torch.acosh(z[i, j].clamp_min(1.0 + 1e-12)).sum() / math.sqrt(curv)


def spread_on_circle(
    n: int, rho: float, delta: float, curv: float, steps: int = 150, lr: float = 0.1,
    seed: int = 0, within_cone: bool = False,
) -> Spread:
    """Maximise sum_{i<j} d(y_i, y_j) over the angles of n points at distance delta from
    x = anchor(rho) (Adam on -``circle_pairwise_sum``, lr decaying linearly to 0, float64).
    Start: angles uniform in [-psi/2, psi/2] (all inside the cone). ``within_cone``: angles
    clamped to [-psi, psi] after every step (projected ascent: the best configuration that stays
    in the cone). The returned objective and share inside are measured on ``circle_points``
    with ``geometry.lorentz``."""
    if n < 2:
        raise ValueError(f"need at least 2 points, got {n}")
    psi = half_aperture_at(rho, curv)
    gen = torch.Generator().manual_seed(seed)
    theta0 = (torch.rand(n, generator=gen, dtype=torch.float64) - 0.5) * psi
    theta = theta0.clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 - k / steps)
    for _ in range(steps):
        opt.zero_grad()
        loss = -circle_pairwise_sum(theta, delta, curv)
        loss.backward()
        opt.step()
        decay.step()
        if within_cone:
            with torch.no_grad():
                theta.clamp_(-psi, psi)
    with torch.no_grad():
        pts = circle_points(rho, delta, theta, curv)
        objective = float(pairwise_sum(pts, curv))
    return Spread(theta=theta.detach().numpy(), theta0=theta0.numpy(), objective=objective,
                  inside=cone_fraction(rho, pts, curv), psi=psi)


def cone_area(delta: float | np.ndarray, psi: float, curv: float) -> np.ndarray:
    """Closed form V(delta) = 2 psi (cosh(sqrt(c) delta) - 1) / c (Proposition 2)."""
    sc = math.sqrt(curv)
    return 2.0 * psi * (np.cosh(sc * np.asarray(delta, dtype=np.float64)) - 1.0) / curv


def ball_box(rho: float, delta: float, curv: float) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box (lo, hi) in space-part coordinates of the geodesic ball B(anchor(rho),
    delta): the ball is {y : -c <x, y>_L <= cosh(sqrt(c) delta)}, a convex set in y (y_t is
    convex in y), so the box of 4096 boundary points, widened by 1%, contains it."""
    theta = torch.linspace(-math.pi, math.pi, 4096, dtype=torch.float64)
    edge = circle_points(rho, delta, theta, curv).numpy()
    lo, hi = edge.min(0), edge.max(0)
    pad = 0.01 * (hi - lo)
    return lo - pad, hi + pad


def cone_area_mc(
    rho: float, delta: float, curv: float, samples: int = 200_000, seed: int = 0,
) -> tuple[float, float]:
    """Monte-Carlo (estimate, standard error) of V(delta): y uniform in ``ball_box``, weight
    1 / sqrt(1 + c |y|^2) (the hyperbolic area element in space-part coordinates), indicator
    d(x, y) <= delta and ext_angle(x, y) <= psi(x) with ``geometry.lorentz``."""
    lo, hi = ball_box(rho, delta, curv)
    rng = np.random.default_rng(seed)
    y = torch.from_numpy(lo + (hi - lo) * rng.random((samples, 2)))
    x = anchor(rho, curv)[None].expand(samples, 2)
    near = lorentz.dist(x, y, curv) <= delta
    in_cone = lorentz.ext_angle(x, y, curv) <= half_aperture_at(rho, curv)
    weight = 1.0 / torch.sqrt(1.0 + curv * (y * y).sum(-1))
    f = (weight * (near & in_cone).double()).numpy() * float(np.prod(hi - lo))
    return float(f.mean()), float(f.std(ddof=1) / math.sqrt(samples))


def exp_rate(deltas: Sequence[float], areas: Sequence[float]) -> float:
    """Least-squares slope of log V against delta: the exponential rate. From the closed form,
    d log V / d delta = sqrt(c) coth(sqrt(c) delta / 2), which is >= sqrt(c) and -> sqrt(c):
    shrinking the largest distance by D shrinks V by at least exp(-sqrt(c) D)."""
    d = np.asarray(deltas, dtype=np.float64)
    v = np.log(np.asarray(areas, dtype=np.float64))
    return float(np.polyfit(d, v, 1)[0])


__all__ = [
    "MIN_RADIUS",
    "Spread",
    "anchor",
    "ball_box",
    "boost",
    "circle_pairwise_sum",
    "circle_points",
    "cone_area",
    "cone_area_mc",
    "cone_fraction",
    "exp_rate",
    "half_aperture_at",
    "pairwise_sum",
    "spread_on_circle",
]
