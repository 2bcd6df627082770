"""``clipspace demo``: the main job on the embedded MAD default.

Generate MAD from the embedded MNIST digits, train clip, euclip, meru and atmg with the same
small towers and budget, evaluate every run, analyse its embeddings, write one report and print
a comparison table. ``quick`` shrinks the data and the budget (CI runs it).
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
    mad_recipe,
)
from clipspace.io import atomic_write_text
from clipspace.report import write_report
from clipspace.train import train
from clipspace.tree import to_json

PRESET_NAMES: tuple[str, ...] = ("clip", "euclip", "meru", "atmg")


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
    run_dirs = []
    for preset in presets:
        t1 = time.perf_counter()
        run_dir = Path(train(mad_recipe(preset, mad, out / "runs", budget, seed),
                             overwrite=overwrite))
        print(f"[demo] trained {preset} in {time.perf_counter() - t1:.0f} s")
        results[preset] = evaluate_run(run_dir, f"mad:{mad}", max_samples=budget.eval_samples,
                                       progress=progress)
        run_dirs.append(run_dir)
    html_path, _ = write_report(run_dirs, out / "report", title=title)
    table = comparison_table(results)
    atomic_write_text(out / "summary.txt", table + "\n")
    atomic_write_text(out / "results.json", to_json(results) + "\n")
    print(table)
    print(f"[demo] report: {html_path}  total {time.perf_counter() - t0:.0f} s")
    return results


__all__ = ["PRESET_NAMES", "run_demo"]
