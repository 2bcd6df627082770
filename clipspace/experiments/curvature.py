"""``clipspace reproduce curvature``: MERU and ATMG across curvature (ATMG, Ramasinghe et al.
2024: its angle loss keeps working at high curvature where MERU's distance loss degrades).

Grid: preset (meru, atmg) x initial c (0.1, 1, 10) x c learnt or fixed (``geometry.learn_curv``)
x centroid regulariser off / on (``loss.centroid_weight`` 0 or ``CENTROID_WEIGHT``, ATMG's p = 2,
q = 0.5). ``geometry.curv_min`` / ``curv_max`` are widened to 0.01 / 100 so a learnt c can move
away from 0.1 and 10. Each cell trains with the shared MAD recipe and reports zero-shot digit
top-1, retrieval R@1 both ways and the final c. Quick: c in {0.1, 10}, fixed, no regulariser.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipspace.analysis.hyperbolic_plots import plot_curvature
from clipspace.experiments.common import FULL, QUICK, ensure_mad, evaluate_run, finish, mad_recipe
from clipspace.experiments.registry import Experiment, Option, names_parser, register
from clipspace.report import Section, Table
from clipspace.train import train
from clipspace.train.logger import read_metrics
from clipspace.tree import get_dotted

PRESET_NAMES: tuple[str, ...] = ("meru", "atmg")
CENTROID_WEIGHT = 0.5  # ATMG's preset weight
CURV_RANGE = {"geometry.curv_min": 0.01, "geometry.curv_max": 100.0}
METRICS: dict[str, str] = {
    "digit top-1": "zeroshot.digit.top1",
    "I->T R@1 (consistent)": "retrieval.consistent_i2t_r1",
    "T->I R@1 (consistent)": "retrieval.consistent_t2i_r1",
}
PRIMARY = "digit top-1"
TOL = 0.02  # a change smaller than this is "no change" in the verdict
SCALES: dict[str, dict[str, Any]] = {
    # 24 cells x 270 steps at the ~8 steps/s a 2-core CPU trains MAD at, plus ~5 s of evaluation
    # per cell: ~15 minutes, inside the 20-minute budget (400 steps took 23 min 38 s)
    "full": {"budget": dataclasses.replace(FULL, steps=270, eval_samples=1000),
             "curvs": (0.1, 1.0, 10.0), "learn": (False, True), "centroid": (False, True)},
    "quick": {"budget": dataclasses.replace(QUICK, steps=40, eval_samples=300),
              "curvs": (0.1, 10.0), "learn": (False,), "centroid": (False,)},
}
CLAIM = ("ATMG's angle-based loss keeps working at high curvature, where MERU's geodesic-"
         "distance contrastive loss degrades (ATMG, curvature ablation).")


@dataclass(frozen=True)
class Cell:
    """One configuration of the grid."""

    preset: str
    curv: float
    learn: bool
    centroid: bool

    @property
    def name(self) -> str:
        return (f"{self.preset}-c{self.curv:g}-{'learnt' if self.learn else 'fixed'}"
                f"{'-centroid' if self.centroid else ''}")

    def overrides(self) -> dict[str, Any]:
        return {**CURV_RANGE, "geometry.curv": self.curv, "geometry.learn_curv": self.learn,
                "loss.centroid_weight": CENTROID_WEIGHT if self.centroid else 0.0,
                "run.name": self.name, "run.progress": False}


def grid(presets: Sequence[str], scale: dict[str, Any]) -> list[Cell]:
    """Every cell of the scale, preset-major."""
    return [Cell(p, c, learn, cen) for p in presets for cen in scale["centroid"]
            for learn in scale["learn"] for c in scale["curvs"]]


def cell_metrics(results: dict[str, Any], final_curv: float) -> dict[str, float]:
    out = {label: float(get_dotted(results, key)) for label, key in METRICS.items()}
    out["final c"] = final_curv
    return out


def degradation(rows: dict[str, dict[str, Any]], preset: str) -> float | None:
    """Mean over centroid settings of PRIMARY at the smallest fixed c minus at the largest
    fixed c (positive = worse at high curvature); None without two fixed curvatures."""
    cells = [r for r in rows.values() if r["preset"] == preset and not r["learn"]]
    drops = []
    for cen in sorted({r["centroid"] for r in cells}):
        by_c = {r["curv"]: r["metrics"][PRIMARY] for r in cells if r["centroid"] == cen}
        if len(by_c) >= 2:
            drops.append(by_c[min(by_c)] - by_c[max(by_c)])
    return float(np.mean(drops)) if drops else None


def verdict(rows: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """Rule on fixed-c cells: A = MERU degrades (drop > TOL), B = ATMG keeps working
    (drop <= TOL). Both: 'agrees'; one: 'partly'; none: 'disagrees'; 'not comparable' when
    either preset lacks two fixed curvatures."""
    dm, da = degradation(rows, "meru"), degradation(rows, "atmg")
    if dm is None or da is None:
        return "not comparable", "meru and atmg each need two fixed curvatures."
    a, b = dm > TOL, da <= TOL
    text = (f"From the smallest to the largest fixed c, {PRIMARY} changes by {-dm:+.3f} for "
            f"MERU ({'degrades' if a else 'does not degrade'}, tolerance {TOL}) and {-da:+.3f} "
            f"for ATMG ({'keeps working' if b else 'degrades too'}).")
    return {2: "agrees", 1: "partly", 0: "disagrees"}[int(a) + int(b)], text


def final_curvature(run_dir: Path) -> float:
    """The last logged curvature of a run (``metrics.jsonl`` key ``curv``)."""
    from_log = [r["curv"] for r in read_metrics(run_dir) if "curv" in r]
    return float(from_log[-1]) if from_log else float("nan")


def result_table(rows: dict[str, dict[str, Any]]) -> Table:
    labels = [*METRICS, "final c"]
    return Table(["cell", *labels],
                 [[name, *(f"{r['metrics'][k]:.3f}" for k in labels)] for name, r in rows.items()],
                 "MERU and ATMG per curvature cell (MAD test split)")


def figure(rows: dict[str, dict[str, Any]], curvs: Sequence[float], path: Path) -> Path:
    """One panel per metric, one line per (preset, learnt, centroid) against c."""
    series: dict[str, dict[str, list[float]]] = {m: {} for m in METRICS}
    for r in rows.values():
        label = (f"{r['preset']} {'learnt' if r['learn'] else 'fixed'}"
                 f"{' +centroid' if r['centroid'] else ''}")
        for m in METRICS:
            series[m].setdefault(label, [float("nan")] * len(curvs))
            series[m][label][list(curvs).index(r["curv"])] = r["metrics"][m]
    return plot_curvature(list(curvs), series, path)


def reproduce_curvature(
    out: str | Path = "reproduce-curvature", quick: bool = False, workers: int = 2,
    seed: int = 0, presets: Sequence[str] = PRESET_NAMES,
) -> dict[str, Any]:
    """Train and evaluate every cell; writes results.json, section.json, curvature.png and
    report/; returns {cell name: {preset, curv, learn, centroid, metrics}}."""
    t0 = time.perf_counter()
    scale = SCALES["quick" if quick else "full"]
    budget = scale["budget"]
    out = Path(out)
    mad = ensure_mad(out / "mad", budget.digits, workers, seed)
    rows: dict[str, dict[str, Any]] = {}
    run_dirs = []
    for cell in grid(presets, scale):
        run_dir = Path(train(mad_recipe(cell.preset, mad, out / "runs", budget, seed,
                                        cell.overrides()), overwrite=True))
        res = evaluate_run(run_dir, f"mad:{mad}", suites=("zeroshot", "retrieval"),
                           max_samples=budget.eval_samples, progress=False, analyse=False)
        rows[cell.name] = {**dataclasses.asdict(cell),
                           "metrics": cell_metrics(res, final_curvature(run_dir))}
        run_dirs.append(run_dir)
        m = rows[cell.name]["metrics"]
        print(f"[curvature] {cell.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items())
              + f" ({time.perf_counter() - t0:.0f} s)")
    fig = figure(rows, scale["curvs"], out / "curvature.png")
    v, finding = verdict(rows)
    sec = Section(
        title="Curvature: MERU vs ATMG", paper="ATMG", claim=CLAIM, finding=finding,
        verdict=v, tables=[result_table(rows)], figures=[fig],
        headline={f"{p}: {PRIMARY} drop, low -> high c": d for p in presets
                  if (d := degradation(rows, p)) is not None})
    finish(out, "curvature", {"cells": rows, "verdict": v, "tolerance": TOL}, sec, run_dirs,
           "Curvature on MAD: MERU vs ATMG")
    print(f"[curvature] {time.perf_counter() - t0:.0f} s")
    return rows


parse_presets = names_parser("--presets", PRESET_NAMES)


register(Experiment(
    name="curvature", paper="ATMG", run=reproduce_curvature,
    help="MERU and ATMG at c = 0.1, 1, 10, learnt and fixed, with and without the centroid "
    "regulariser",
    description="Trains meru and atmg on MAD for every cell of c x learnt/fixed x centroid "
    "regulariser on/off and compares zero-shot and retrieval against c.",
    options=(Option("--presets", "comma-separated subset of meru,atmg", "meru,atmg",
                    parse_presets),),
))

__all__ = ["Cell", "degradation", "grid", "parse_presets", "reproduce_curvature", "verdict"]
