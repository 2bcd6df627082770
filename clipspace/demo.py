"""``clipspace demo`` and ``clipspace reproduce``: the end-to-end jobs on the embedded MAD default.

demo: generate MAD from the embedded MNIST digits, train clip, euclip, meru and atmg with the same
small towers and budget, evaluate every run, analyse its embeddings, write one report and print a
comparison table. ``quick`` shrinks the data and the budget to fit in a few minutes (CI runs it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipspace.config import Config, resolve
from clipspace.io import atomic_write_text

PRESET_NAMES: tuple[str, ...] = ("clip", "euclip", "meru", "atmg")


@dataclass(frozen=True)
class Budget:
    """Data and compute of one demo scale."""

    digits: int  # source MNIST digits used (x24 variants); 0 = all 5,000
    steps: int
    batch_size: int
    eval_samples: int
    hierarchy_samples: int
    warmup: int


QUICK = Budget(digits=250, steps=120, batch_size=128, eval_samples=1000, hierarchy_samples=200,
               warmup=10)
FULL = Budget(digits=0, steps=900, batch_size=256, eval_samples=5000, hierarchy_samples=500,
              warmup=50)

TABLE_KEYS: dict[str, str] = {
    "digit acc": "zeroshot.digit.top1",
    "colour acc": "zeroshot.colour.top1",
    "scale acc": "zeroshot.scale.top1",
    "I->T R@1": "retrieval.image_to_text.R@1",
    "T->I R@1": "retrieval.text_to_image.R@1",
    "hier P": "hierarchy.precision",
    "hier R": "hierarchy.recall",
    "tau_d": "hierarchy.tau_d",
    "RMG": "gap.rmg",
    "L2M": "gap.l2m",
    "MOAD": "moad.moad",
}


def ensure_mad(root: Path, digits: int, workers: int, seed: int, mnist: str = "embedded") -> Path:
    """Generate MAD under ``root`` unless a complete dataset of that size is already there."""
    from clipspace.data.mad_generate import generate_mad

    manifest = root / "manifest.json"
    if manifest.exists():
        info = json.loads(manifest.read_text())
        if info.get("seed") == seed and info.get("limit", 0) == digits:
            return root
    return generate_mad(root, mnist=mnist, workers=workers, seed=seed, overwrite=True,
                        limit=digits)


def demo_config(preset: str, mad: Path, runs: Path, budget: Budget, seed: int,
                overrides: dict[str, Any] | None = None) -> Config:
    """The shared recipe: same towers, data, steps and optimiser for every preset."""
    base: dict[str, Any] = {
        "data.train": f"mad:{mad}",
        "data.batch_size": budget.batch_size,
        "model.name": "mad-tiny",
        "optim.steps": budget.steps,
        "optim.warmup_steps": budget.warmup,
        "optim.lr": 2e-3,
        "optim.weight_decay": 0.1,
        "run.output_dir": str(runs),
        "run.name": preset,
        "run.seed": seed,
        "run.log_every": 10,
    }
    base.update(overrides or {})
    return resolve(preset, base)


def _get(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def comparison_table(results: dict[str, dict[str, Any]], keys: dict[str, str] = TABLE_KEYS) -> str:
    """Plain-text table: one row per run, one column per headline metric."""
    header = ["run", *keys]
    rows = [header]
    for name, res in results.items():
        row = [name]
        for dotted in keys.values():
            value = _get(res, dotted)
            row.append("-" if value is None else f"{float(value):.3f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows)


def evaluate_run(run_dir: Path, mad: Path, budget: Budget, progress: bool = True) -> dict:
    """Evaluate a finished run on MAD test, analyse its embeddings, write eval/analysis JSON."""
    from clipspace.eval.evaluate import analyse_run, evaluate
    from clipspace.models import create_model

    model = create_model(pretrained=str(run_dir))
    model.eval()
    results = evaluate(
        model, f"mad:{mad}", suites=("zeroshot", "retrieval", "linear_probe", "hierarchy"),
        split="test", max_samples=budget.eval_samples,
        hierarchy_samples=budget.hierarchy_samples, progress=progress,
    )
    atomic_write_text(run_dir / "eval.json", json.dumps(results, indent=2) + "\n")
    analysis = analyse_run(model, f"mad:{mad}", run_dir / "figures", split="test",
                           max_samples=budget.eval_samples)
    atomic_write_text(run_dir / "analysis.json", json.dumps(analysis, indent=2) + "\n")
    return {**results, **analysis}


def run_demo(
    out: str | Path = "demo",
    quick: bool = False,
    presets: Sequence[str] = PRESET_NAMES,
    workers: int = 2,
    seed: int = 0,
    mnist: str = "embedded",
    overwrite: bool = True,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Run the whole demo; returns {preset: metrics} and writes ``out/report``."""
    from clipspace.report import write_report
    from clipspace.train import train

    budget = QUICK if quick else FULL
    out = Path(out)
    t0 = time.perf_counter()
    mad = ensure_mad(out / "mad", budget.digits, workers, seed, mnist)
    print(f"[demo] MAD ready at {mad} ({time.perf_counter() - t0:.0f} s)")
    results: dict[str, dict[str, Any]] = {}
    run_dirs = []
    for preset in presets:
        cfg = demo_config(preset, mad, out / "runs", budget, seed)
        t1 = time.perf_counter()
        run_dir = Path(train(cfg, overwrite=overwrite))
        print(f"[demo] trained {preset} in {time.perf_counter() - t1:.0f} s")
        results[preset] = evaluate_run(run_dir, mad, budget, progress)
        run_dirs.append(run_dir)
    html_path, _ = write_report(run_dirs, out / "report", title="clipspace demo on MAD")
    table = comparison_table(results)
    atomic_write_text(out / "summary.txt", table + "\n")
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    print(table)
    print(f"[demo] report: {html_path}  total {time.perf_counter() - t0:.0f} s")
    return results
