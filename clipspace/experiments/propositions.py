"""``clipspace reproduce propositions``: ATMG (Ramasinghe et al., CVPR 2024, Sec. 3)
Propositions 1 and 2 checked numerically in H^2, no training (math: ``analysis.propositions``).

Quantities checked (stated in the report section):
* Prop. 1: for a text point x at distance rho from O (half-aperture psi(x) < pi/2) and n >= 2
  points at equal distance delta from x, the angles that maximise sum_{i<j} d(y_i, y_j)
  (gradient ascent from a start inside the cone) leave x's cone: the share of optimised points
  with ext_angle(x, y) <= psi(x) is < 1, and the optimum beats the best in-cone configuration.
* Prop. 2: V(delta) = area of {y in cone(x), d(x, y) <= delta}; the Monte-Carlo estimate must
  match the closed form 2 psi (cosh(sqrt(c) delta) - 1) / c, and the fitted rate of log V in
  delta (upper half of the grid) must be sqrt(c): V shrinks by exp(-sqrt(c) D) when the largest
  distance shrinks by D.
Distances scale as 1 / sqrt(c), so grids are given in units of 1 / sqrt(c).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipspace.analysis import propositions as P
from clipspace.analysis.hyperbolic_plots import plot_cone_area, plot_spread
from clipspace.experiments.common import finish
from clipspace.experiments.registry import Experiment, Option, number_parser, register
from clipspace.report import Section, Table
from clipspace.report.views import poincare

#: grids (distances in units of 1 / sqrt(c)); quick: one curvature, fewer cells and samples
GRIDS: dict[str, dict[str, Any]] = {
    "quick": {"curvs": (1.0,), "rhos": (0.5, 2.0), "ns": (2, 3, 8), "deltas": (0.5, 2.0),
              "area_deltas": tuple(np.linspace(0.5, 6.0, 8)), "samples": 40_000,
              "steps": 150},
    "full": {"curvs": (0.1, 1.0, 10.0), "rhos": (0.5, 1.0, 2.0), "ns": (2, 3, 4, 8, 16),
             "deltas": (0.25, 1.0, 4.0), "area_deltas": tuple(np.linspace(0.25, 8.0, 12)),
             "samples": 400_000, "steps": 250},
}
MAX_Z = 4.0  # |Monte Carlo - closed form| / standard error allowed for Prop. 2
RATE_TOL = 0.05  # Monte-Carlo allowance on the fitted rate / sqrt(c)
CLAIM = ("Prop. 1 (H^2): points at equal distance from a text embedding x, placed to maximise "
         "their summed pairwise distances (what a distance-based contrastive loss asks of the "
         "images of one caption), have at least one point outside x's entailment cone. Prop. 2: "
         "the area available inside the cone shrinks exponentially as the largest distance "
         "shrinks.")


def spread_rows(grid: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """Prop. 1 over the grid: one row per (c, rho, delta, n) with the share inside the cone of
    the free optimum and of the in-cone optimum, and both objectives."""
    rows = []
    for c in grid["curvs"]:
        sc = math.sqrt(c)
        for rho in grid["rhos"]:
            for delta in grid["deltas"]:
                for n in grid["ns"]:
                    free = P.spread_on_circle(n, rho / sc, delta / sc, c, grid["steps"],
                                              seed=seed)
                    held = P.spread_on_circle(n, rho / sc, delta / sc, c, grid["steps"],
                                              seed=seed, within_cone=True)
                    rows.append({"curv": c, "rho": rho / sc, "delta": delta / sc, "n": n,
                                 "psi": free.psi, "inside": free.inside,
                                 "objective": free.objective, "cone_objective": held.objective,
                                 "cone_inside": held.inside})
    return rows


def prop1_verdict(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """Rule: among rows with psi < pi/2 (the premise), 'agrees' when every optimum has a point
    outside the cone (inside < 1) and beats the in-cone optimum; 'partly' when only the first
    holds everywhere; 'disagrees' otherwise; 'not comparable' without such rows."""
    premise = [r for r in rows if r["psi"] < math.pi / 2 - 1e-9]
    if not premise:
        return "not comparable", "no configuration has a cone narrower than a half-plane"
    leave = sum(r["inside"] < 1.0 for r in premise)
    better = sum(r["objective"] > r["cone_objective"] for r in premise)
    worst = max(r["inside"] for r in premise)
    text = (f"Prop. 1: in {leave}/{len(premise)} configurations (psi < pi/2) the maximiser of "
            f"the summed pairwise distance has points outside x's cone (largest share inside: "
            f"{worst:.2f}); it beats the best in-cone configuration in {better}/{len(premise)}.")
    if leave == len(premise):
        return ("agrees" if better == len(premise) else "partly"), text
    return "disagrees", text


def area_rows(grid: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """Prop. 2 over the grid: closed form and Monte Carlo of V(delta) per (c, rho, delta)."""
    rows = []
    for c in grid["curvs"]:
        sc = math.sqrt(c)
        for rho in grid["rhos"]:
            psi = P.half_aperture_at(rho / sc, c)
            for k, delta in enumerate(grid["area_deltas"]):
                est, se = P.cone_area_mc(rho / sc, delta / sc, c, grid["samples"], seed + k)
                closed = float(P.cone_area(delta / sc, psi, c))
                rows.append({"curv": c, "rho": rho / sc, "delta": delta / sc, "psi": psi,
                             "closed": closed, "mc": est, "se": se,
                             "z": (est - closed) / se if se > 0 else 0.0})
    return rows


def rates(rows: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per (c, rho): the fitted rate of log V (Monte Carlo) in delta over the upper half of the
    delta grid, divided by sqrt(c), and the range the closed form predicts for it there:
    [1, coth(sqrt(c) delta_lo / 2)] (the local slope sqrt(c) coth(sqrt(c) delta / 2) falls
    from coth(.. delta_lo ..) to 1; delta_lo the smallest delta fitted)."""
    out = []
    for c, rho in dict.fromkeys((r["curv"], r["rho"]) for r in rows):
        cell = [r for r in rows if r["curv"] == c and r["rho"] == rho]
        upper = cell[len(cell) // 2:]
        rate = P.exp_rate([r["delta"] for r in upper], [r["mc"] for r in upper])
        lo = math.sqrt(c) * upper[0]["delta"]
        out.append({"curv": c, "rho": rho, "rate": rate, "rate_over_sqrt_c": rate / math.sqrt(c),
                    "predicted_max": 1.0 / math.tanh(lo / 2.0)})
    return out


def prop2_verdict(rows: list[dict[str, Any]], fits: list[dict[str, float]]) -> tuple[str, str]:
    """Rule: (a) every |z| <= MAX_Z (Monte Carlo matches the closed form) and (b) every fitted
    rate / sqrt(c) in [1 - RATE_TOL, predicted_max + RATE_TOL] (exponential shrinkage at rate
    >= sqrt(c)): both 'agrees', one 'partly', none 'disagrees'."""
    zmax = max(abs(r["z"]) for r in rows)
    ok_a = zmax <= MAX_Z
    ok_b = all(1.0 - RATE_TOL <= f["rate_over_sqrt_c"] <= f["predicted_max"] + RATE_TOL
               for f in fits)
    lo = min(f["rate_over_sqrt_c"] for f in fits)
    hi = max(f["rate_over_sqrt_c"] for f in fits)
    text = (f"Prop. 2: the Monte-Carlo cone area matches 2 psi (cosh(sqrt(c) delta) - 1) / c "
            f"within {zmax:.1f} standard errors (limit {MAX_Z:g}); on the upper half of the "
            f"delta grid log-area grows at rate/sqrt(c) {lo:.3f}..{hi:.3f} "
            f"({'inside' if ok_b else 'outside'} the predicted [1, "
            f"{max(f['predicted_max'] for f in fits):.3f}] +- {RATE_TOL:g}), so shrinking the "
            f"largest distance by D shrinks the room in the cone by at least about "
            f"exp(-sqrt(c) D).")
    return {2: "agrees", 1: "partly", 0: "disagrees"}[int(ok_a) + int(ok_b)], text


def combine(v1: str, v2: str) -> str:
    """Section verdict: equal verdicts stand; any other mix is 'partly'."""
    return v1 if v1 == v2 else "partly"


def disk_view(rho: float, delta: float, n: int, seed: int, steps: int) -> dict[str, np.ndarray]:
    """Poincare-disk coordinates (c = 1) of the Prop. 1 picture for one configuration."""
    spread = P.spread_on_circle(n, rho, delta, 1.0, steps, seed=seed)
    ray = torch.linspace(0.0, 3.0, 60, dtype=torch.float64)
    ring = torch.linspace(-math.pi, math.pi, 200, dtype=torch.float64)
    pts = {
        "x": P.anchor(rho, 1.0)[None],
        "cone_left": P.circle_points(rho, ray, torch.full((60,), spread.psi), 1.0),
        "cone_right": P.circle_points(rho, ray, torch.full((60,), -spread.psi), 1.0),
        "circle": P.circle_points(rho, delta, ring, 1.0),
        "start": P.circle_points(rho, delta, torch.from_numpy(spread.theta0), 1.0),
        "optimum": P.circle_points(rho, delta, torch.from_numpy(spread.theta), 1.0),
    }
    return {k: poincare(v.float(), 1.0) for k, v in pts.items()}


def _tables(spread: list[dict[str, Any]], fits: list[dict[str, float]]) -> list[Table]:
    t1 = Table(["c", "rho", "psi", "delta", "n", "share inside (free max)",
                "sum d (free)", "sum d (in cone)"],
               [[f"{r['curv']:g}", f"{r['rho']:.3g}", f"{r['psi']:.3f}", f"{r['delta']:.3g}",
                 str(r["n"]), f"{r['inside']:.2f}", f"{r['objective']:.3f}",
                 f"{r['cone_objective']:.3f}"] for r in spread],
               "Prop. 1: n points at distance delta from x, spread to maximise the summed "
               "pairwise distance, vs the best configuration held inside the cone")
    t2 = Table(["c", "rho", "fitted rate of log V", "rate / sqrt(c)", "predicted max"],
               [[f"{f['curv']:g}", f"{f['rho']:.3g}", f"{f['rate']:.4f}",
                 f"{f['rate_over_sqrt_c']:.4f}", f"{f['predicted_max']:.4f}"] for f in fits],
               "Prop. 2: exponential rate of the Monte-Carlo cone area in delta")
    return [t1, t2]


def _figures(out: Path, area: list[dict[str, Any]], seed: int, steps: int) -> list[Path]:
    fig_dir = out / "figures"
    disk = disk_view(rho=1.0, delta=0.8, n=8, seed=seed, steps=steps)
    f1 = plot_spread(disk, fig_dir / "prop1_spread.png")
    closed: dict[str, list[float]] = {}
    mc: dict[str, tuple[list[float], list[float]]] = {}
    deltas: list[float] = []
    for r in area:
        key = f"c={r['curv']:g}, sqrt(c) rho={math.sqrt(r['curv']) * r['rho']:.2g}"
        c = r["curv"]
        closed.setdefault(key, []).append(c * r["closed"])
        est, se = mc.setdefault(key, ([], []))
        est.append(c * r["mc"])
        se.append(c * r["se"])
        if len(closed) == 1:
            deltas.append(math.sqrt(c) * r["delta"])
    f2 = plot_cone_area(deltas, closed, mc, fig_dir / "prop2_cone_area.png")
    return [f1, f2]


def reproduce_propositions(
    out: str | Path = "reproduce-propositions", quick: bool = False, workers: int = 2,
    seed: int = 0, samples: int = 0,
) -> dict[str, Any]:
    """Check Propositions 1 and 2 on the grid of ``GRIDS`` (``samples`` overrides the Monte-Carlo
    sample count); writes results.json, section.json, figures/ and report/; returns results."""
    del workers  # no data to generate
    t0 = time.perf_counter()
    out = Path(out)
    grid = dict(GRIDS["quick" if quick else "full"])
    if samples:
        grid["samples"] = samples
    spread = spread_rows(grid, seed)
    v1, text1 = prop1_verdict(spread)
    print(f"[propositions] {text1} ({time.perf_counter() - t0:.1f} s)")
    area = area_rows(grid, seed)
    fits = rates(area)
    v2, text2 = prop2_verdict(area, fits)
    print(f"[propositions] {text2} ({time.perf_counter() - t0:.1f} s)")
    figures = _figures(out, area, seed, grid["steps"])
    sec = Section(
        title="ATMG Propositions 1 and 2 in H^2", paper="ATMG", claim=CLAIM,
        finding=f"{text1} {text2}", verdict=combine(v1, v2), tables=_tables(spread, fits),
        figures=figures,
        headline={"Prop. 1 largest share inside the cone": max(r["inside"] for r in spread),
                  "Prop. 2 max |MC - closed| / SE": max(abs(r["z"]) for r in area),
                  "Prop. 2 rate / sqrt(c) (mean)": float(np.mean(
                      [f["rate_over_sqrt_c"] for f in fits]))})
    results = {"grid": grid, "prop1": {"verdict": v1, "rows": spread},
               "prop2": {"verdict": v2, "rows": area, "rates": fits}, "verdict": sec.verdict}
    finish(out, "propositions", results, sec, [], "ATMG propositions in H^2")
    print(f"[propositions] {time.perf_counter() - t0:.1f} s")
    return results


parse_samples = number_parser("--samples", int, 1000, 10_000_000)


register(Experiment(
    name="propositions", paper="ATMG", run=reproduce_propositions,
    help="ATMG Propositions 1 and 2 checked numerically in H^2 (no training, seconds)",
    description="Prop. 1: points at equal distance from x that maximise their pairwise "
    "distances leave x's entailment cone. Prop. 2: the cone area within distance delta "
    "(Monte Carlo vs closed form) grows as exp(sqrt(c) delta).",
    options=(Option("--samples", "Monte-Carlo samples per cone area (0: the scale's default)",
                    0, parse_samples),),
))

__all__ = ["GRIDS", "combine", "prop1_verdict", "prop2_verdict", "rates",
           "reproduce_propositions", "spread_rows", "area_rows", "parse_samples"]
