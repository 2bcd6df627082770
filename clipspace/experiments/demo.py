"""``clipspace demo``: the main job on the embedded MAD default.

Generate MAD from the embedded MNIST digits, train clip, euclip, meru and atmg with the same
small towers and budget, evaluate every run, analyse its embeddings, write one report (headline
first: the section below, then the runs side by side) and print a comparison table. ``quick``
shrinks the data and the budget (CI runs it).

The report's section checks the hyperbolic papers' central claim (MERU Sec. 4-5, ATMG Sec. 5):
Lorentz runs order the generic -> specific caption chains better (higher hierarchy tau_d) than
the sphere / Euclidean runs without losing zero-shot accuracy. Rule (``demo_verdict``): with
a = the best tau_d of a Lorentz run and b = the best of the others, "better hierarchy" is
a > b; "zero-shot kept" is best Lorentz digit accuracy >= best other - ``ZS_TOLERANCE``;
both -> agrees, one -> partly, neither -> disagrees; no run of one side -> not comparable.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clipspace.experiments.common import (
    FULL,
    QUICK,
    comparison_table,
    ensure_mad,
    evaluate_run,
    finish,
    mad_recipe,
)
from clipspace.io import atomic_write_text
from clipspace.report import Section, Table
from clipspace.train import train
from clipspace.tree import get_dotted

PRESET_NAMES: tuple[str, ...] = ("clip", "euclip", "meru", "atmg")
ZS_TOLERANCE = 0.02  # zero-shot digit accuracy a Lorentz run may lose and still count as kept
CLAIM = ("Hyperbolic (Lorentz) embeddings order generic -> specific captions better than "
         "spherical or Euclidean ones (higher hierarchy tau_d) at no cost in zero-shot accuracy.")


def _best(rows: dict[str, tuple[str, float, float]], lorentz: bool, col: int
          ) -> tuple[float, str]:
    """(best value of column ``col`` (1 = tau_d, 2 = digit), its preset) on one side."""
    side = [(v[col], k) for k, v in rows.items() if (v[0] == "lorentz") == lorentz
            and v[col] == v[col]]
    return max(side) if side else (float("nan"), "-")


def demo_verdict(rows: dict[str, tuple[str, float, float]]
                 ) -> tuple[str, str, dict[str, float]]:
    """(verdict, finding, headline) of {preset: (geometry, tau_d, zero-shot digit top-1)} by
    the rule of the module docstring."""
    (a, pa), (b, pb) = _best(rows, True, 1), _best(rows, False, 1)
    (za, qa), (zb, qb) = _best(rows, True, 2), _best(rows, False, 2)
    headline = {"tau_d, best Lorentz": a, "tau_d, best other": b,
                "zero-shot digit, best Lorentz": za, "zero-shot digit, best other": zb}
    if pa == "-" or pb == "-" or qa == "-" or qb == "-":
        return "not comparable", ("needs a Lorentz run and a sphere / Euclidean run with "
                                  "tau_d and zero-shot results; got " + ", ".join(rows)), headline
    better, kept = a > b, za >= zb - ZS_TOLERANCE
    verdict = {2: "agrees", 1: "partly", 0: "disagrees"}[int(better) + int(kept)]
    finding = (f"best Lorentz tau_d {a:.3f} ({pa}) vs {b:.3f} ({pb}): hierarchy "
               f"{'better' if better else 'not better'}; zero-shot digit {za:.3f} ({qa}) vs "
               f"{zb:.3f} ({qb}): {'kept' if kept else 'lost'} (tolerance {ZS_TOLERANCE}).")
    return verdict, finding, headline


def demo_section(rows: dict[str, tuple[str, float, float]]) -> Section:
    """The demo's report section: claim, finding and verdict (``demo_verdict``), one table."""
    verdict, finding, headline = demo_verdict(rows)
    table = Table(["preset", "geometry", "tau_d", "zero-shot digit"],
                  [[k, g, f"{t:.3f}", f"{z:.3f}"] for k, (g, t, z) in rows.items()],
                  "Hierarchy and zero-shot accuracy per preset (MAD test split)")
    return Section(title="Hyperbolic vs. flat embeddings on MAD", paper="MERU / ATMG",
                   claim=CLAIM, finding=finding, verdict=verdict, tables=[table],
                   headline=headline)


def _number(res: dict[str, Any], key: str) -> float:
    value = get_dotted(res, key)
    return float(value) if isinstance(value, (int, float)) else float("nan")


def run_demo(
    out: str | Path = "demo",
    quick: bool = False,
    presets: Sequence[str] = PRESET_NAMES,
    workers: int = 2,
    seed: int = 0,
    mnist: str = "embedded",
    overwrite: bool = True,
    progress: bool = True,
    title: str = "clipspace demo on MAD",
) -> dict[str, dict[str, Any]]:
    """Run the whole demo; returns {preset: metrics} and writes ``out/report``."""
    budget = QUICK if quick else FULL
    out = Path(out)
    t0 = time.perf_counter()
    mad = ensure_mad(out / "mad", budget.digits, workers, seed, mnist)
    print(f"[demo] MAD ready at {mad} ({time.perf_counter() - t0:.0f} s)")
    results: dict[str, dict[str, Any]] = {}
    rows: dict[str, tuple[str, float, float]] = {}
    run_dirs = []
    for preset in presets:
        t1 = time.perf_counter()
        cfg = mad_recipe(preset, mad, out / "runs", budget, seed)
        run_dir = Path(train(cfg, overwrite=overwrite))
        print(f"[demo] trained {preset} in {time.perf_counter() - t1:.0f} s")
        results[preset] = evaluate_run(run_dir, f"mad:{mad}", max_samples=budget.eval_samples,
                                       progress=progress)
        rows[preset] = (cfg.geometry.name, _number(results[preset], "hierarchy.tau_d"),
                        _number(results[preset], "zeroshot.digit.top1"))
        run_dirs.append(run_dir)
    section = demo_section(rows)
    table = comparison_table(results)
    atomic_write_text(out / "summary.txt", table + "\n")
    print(table)
    finish(out, "demo", results, section, run_dirs, title, progress=progress)
    print(f"[demo] total {time.perf_counter() - t0:.0f} s")
    return results


__all__ = ["PRESET_NAMES", "ZS_TOLERANCE", "demo_section", "demo_verdict", "run_demo"]
