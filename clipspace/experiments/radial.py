"""``clipspace reproduce radial``: Radial Embedding fine-tuning on the embedded default (MAD).

1. a CLIP (preset ``clip``, model ``mad-tiny``) is trained on MAD with ``clipspace.train.train``
   (or ``--model RUN`` is reused);
2. BEFORE: ``experiments.common.evaluate_run`` on the MAD test split, suites retrieval +
   hierarchy (the HierarCaps protocol on MAD test chains, root = normalised mean of the
   candidates, as the evaluator defines it), plus the same suite with root = text point of ""
   (the RE root), from one embedding pass, written to ``<clip run>/eval.json``;
3. RE fine-tuning (``clipspace.train.finetune``) on MAD train chains;
4. AFTER: the same evaluation, in ``<finetune run>/eval.json``;
5. ``clipspace.report.write_report`` over both runs and a before/after table
   (``before_after.md``, also printed; ``before_after.json``).

The paper's lr 1e-7 barely moves a small MAD model in a few hundred steps; the default here
(``DEFAULT_LR``) was picked by measurement (docs/finetune.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from clipspace.config import FINETUNE_PRESETS, resolve
from clipspace.data.mad_generate import generate_mad
from clipspace.errors import ClipspaceError
from clipspace.experiments.common import evaluate_run
from clipspace.io import atomic_write_text
from clipspace.report import write_report
from clipspace.train import finetune, train
from clipspace.tree import get_dotted, to_json

DEFAULT_LR = 5e-5
#: (label, dotted key in eval.json) of the before/after table
TABLE_ROWS: tuple[tuple[str, str], ...] = (
    ("HierarCaps precision (mean root)", "hierarchy.precision"),
    ("HierarCaps recall (mean root)", "hierarchy.recall"),
    ("HierarCaps tau_d (mean root)", "hierarchy.tau_d"),
    ("HierarCaps precision (root = \"\")", "hierarchy_empty_root.precision"),
    ("HierarCaps recall (root = \"\")", "hierarchy_empty_root.recall"),
    ("HierarCaps tau_d (root = \"\")", "hierarchy_empty_root.tau_d"),
    ("Retrieval i2t R@1 (caption match)", "retrieval.i2t_r1"),
    ("Retrieval t2i R@1 (caption match)", "retrieval.t2i_r1"),
)
SETTINGS: dict[str, dict[str, int]] = {
    # MAD digits, CLIP steps, CLIP batch, fine-tuning steps, fine-tuning batch, eval images
    "quick": {"limit": 120, "train_steps": 60, "train_batch": 128, "steps": 30, "batch": 8,
              "eval_samples": 400},
    "full": {"limit": 1000, "train_steps": 300, "train_batch": 128, "steps": 300, "batch": 8,
             "eval_samples": 1000},
}


def _number(tree: dict[str, Any], dotted: str) -> float:
    value = get_dotted(tree, dotted)
    return float(value) if isinstance(value, (int, float)) else math.nan


def _evaluate(run_dir: Path, data: str, max_samples: int, progress: bool) -> dict[str, Any]:
    """Retrieval + hierarchy with both roots, from one embedding pass; writes eval.json."""
    return evaluate_run(run_dir, data, suites=("retrieval", "hierarchy"),
                        max_samples=max_samples, progress=progress, empty_root=True,
                        analyse=False)


def before_after_table(before: dict[str, Any], after: dict[str, Any]) -> tuple[str, list[dict]]:
    """Markdown table (metric | before | after | change) and its rows."""
    rows = []
    lines = ["| metric | before | after | change |", "|---|---:|---:|---:|"]
    for label, key in TABLE_ROWS:
        b, a = _number(before, key), _number(after, key)
        rows.append({"metric": label, "key": key, "before": b, "after": a, "change": a - b})
        lines.append(f"| {label} | {b:.4f} | {a:.4f} | {a - b:+.4f} |")
    return "\n".join(lines) + "\n", rows


def reproduce_radial(
    out: str | Path = "runs/reproduce-radial",
    quick: bool = False,
    model: str | None = None,
    mad: str | None = None,
    train_steps: int = 0,
    steps: int = 0,
    lr: float = 0.0,
    overwrite: bool = False,
    progress: bool = True,
    batch: int = 0,
) -> dict[str, Any]:
    """Run the whole experiment into ``out``; returns the before/after rows and paths."""
    s = dict(SETTINGS["quick" if quick else "full"])
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite and model is None:
        if not (out / "clip").exists() and not (out / "mad").exists():
            raise ClipspaceError(f"{out} exists and is not a reproduce-radial directory")
    out.mkdir(parents=True, exist_ok=True)
    # 1. data and CLIP
    if mad is None:
        mad_dir = out / "mad"
        if not (mad_dir / "manifest.json").is_file():
            generate_mad(mad_dir, limit=s["limit"], overwrite=True, progress=progress)
    else:
        mad_dir = Path(mad)
    data = f"mad:{mad_dir}"
    if model is None:
        cfg = resolve("clip", {
            "data.train": data, "model.name": "mad-tiny",
            "optim.steps": train_steps or s["train_steps"], "data.batch_size": s["train_batch"],
            "optim.warmup_steps": 20,
            "run.output_dir": str(out), "run.name": "clip", "run.progress": progress,
            "run.tensorboard": False,
        })
        clip_dir = out / "clip"
        if (clip_dir / "checkpoints").is_dir() and not overwrite:
            clip_dir = train(cfg, resume="latest")
        else:
            clip_dir = train(cfg, overwrite=True)
    else:
        clip_dir = Path(model)
    # 2. before
    before = _evaluate(clip_dir, data, s["eval_samples"], progress)
    # 3. fine-tune
    over = dict(FINETUNE_PRESETS["re"])
    over.update({"optim.lr": lr or DEFAULT_LR, "data.batch_size": batch or s["batch"],
                 "run.output_dir": str(out), "run.name": "radial", "run.progress": progress,
                 "run.tensorboard": False, "run.threads": 1})  # tiny steps: 1 thread is fastest
    ft_dir = finetune(clip_dir, resolve("clip", over), data, overwrite=True,
                      steps=steps or s["steps"])
    # 4. after
    after = _evaluate(ft_dir, data, s["eval_samples"], progress)
    # 5. report
    table, rows = before_after_table(before, after)
    header = (f"# Radial Embedding on MAD: before / after\n\nCLIP run `{clip_dir}`, RE run "
              f"`{ft_dir}`; lr {over['optim.lr']}, batch {over['data.batch_size']}, "
              f"{steps or s['steps']} steps; evaluation on {before['n']} MAD test images.\n\n")
    atomic_write_text(out / "before_after.md", header + table)
    atomic_write_text(out / "before_after.json", to_json(rows) + "\n")
    html, md = write_report([clip_dir, ft_dir], out / "report",
                            title="Radial Embedding fine-tuning on MAD")
    print(header + table)
    print(f"report: {html}")
    return {"rows": rows, "clip": str(clip_dir), "radial": str(ft_dir), "report": str(html),
            "table": str(out / "before_after.md")}


__all__ = ["DEFAULT_LR", "before_after_table", "reproduce_radial"]
