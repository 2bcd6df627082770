"""``clipspace reproduce radial``: Radial Embedding fine-tuning on the embedded default (MAD).

1. a CLIP (preset ``clip``, model ``mad-tiny``) is trained on MAD with ``clipspace.train.train``
   (or ``--model RUN`` is reused);
2. BEFORE: ``clipspace.eval.evaluate`` on the MAD test split, suites retrieval + hierarchy (the
   HierarCaps protocol on MAD test chains, root = normalised mean of the candidates, as the
   evaluator defines it), plus the same protocol with root = embedding of "" (the RE root),
   written to ``<clip run>/eval.json``;
3. RE fine-tuning (``clipspace.train.finetune``) on MAD train chains;
4. AFTER: the same evaluation, in ``<finetune run>/eval.json``;
5. ``clipspace.report.write_report`` over both runs and a before/after table
   (``before_after.md``, also printed; ``before_after.json``).

The paper's lr 1e-7 barely moves a small MAD model in a few hundred steps; the default here
(``DEFAULT_LR``) was picked by measurement (docs/finetune.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipspace.errors import ClipspaceError
from clipspace.io import atomic_write_text

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


def _get(tree: dict[str, Any], dotted: str) -> float:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return float("nan")
        node = node[part]
    return float(node) if isinstance(node, (int, float)) else float("nan")


@torch.no_grad()
def hierarchy_empty_root(
    model: Any, tokenizer: Any, data: str, max_samples: int = 0, progress: bool = True
) -> dict[str, Any]:
    """HierarCaps protocol on MAD test chains with rho = distance to the embedding of ""."""
    from clipspace.data.chains import chains_from_labels
    from clipspace.eval.evaluate import embed_dataset, encode_texts, load_eval_dataset
    from clipspace.eval.hierarchy import hierarcaps_metrics, root_distance

    model.eval()
    ds = load_eval_dataset(data, model, "test")
    emb = embed_dataset(model, ds, tokenizer, max_samples=max_samples, progress=progress)
    n = len(emb["captions"])
    chains = [c.positive for c in chains_from_labels(emb["labels"], ds.indices[:n])]
    texts = sorted({c for ch in chains for c in ch})
    cand = encode_texts(model, tokenizer, texts)
    root = encode_texts(model, tokenizer, [""])[0]
    geom, curv = model.geometry, model.curv().detach().float().cpu()
    rho = root_distance(cand, geom, curv, root)
    out = hierarcaps_metrics(emb["image"], cand, texts, rho, chains,
                             lambda a, b: model.similarity(a, b).float())
    lookup = dict(zip(texts, rho.tolist(), strict=True))
    lvl = np.array([[lookup[c] for c in ch] for ch in chains])
    out["root_dist_by_level"] = [float(v) for v in lvl.mean(0)]
    return out


def evaluate_run(model: Any, tokenizer: Any, data: str, run_dir: Path, max_samples: int,
                 progress: bool = True) -> dict[str, Any]:
    """evaluate (retrieval + hierarchy) + ``hierarchy_empty_root``; writes run_dir/eval.json."""
    from clipspace.eval import evaluate

    res = evaluate(model, data, suites=["retrieval", "hierarchy"], tokenizer=tokenizer,
                   max_samples=max_samples, progress=progress)
    res["hierarchy"].pop("traversals", None)
    res["hierarchy_empty_root"] = hierarchy_empty_root(model, tokenizer, data, max_samples,
                                                       progress)
    res["model"] = str(run_dir)
    atomic_write_text(run_dir / "eval.json", json.dumps(res, indent=2) + "\n")
    return res


def before_after_table(before: dict[str, Any], after: dict[str, Any]) -> tuple[str, list[dict]]:
    """Markdown table (metric | before | after | change) and its rows."""
    rows = []
    lines = ["| metric | before | after | change |", "|---|---:|---:|---:|"]
    for label, key in TABLE_ROWS:
        b, a = _get(before, key), _get(after, key)
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
    from clipspace.config import FINETUNE_PRESETS, resolve
    from clipspace.report import write_report
    from clipspace.train.finetune import finetune, load_model_and_tokenizer

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
            from clipspace.data.mad_generate import generate_mad

            generate_mad(mad_dir, limit=s["limit"], overwrite=True, progress=progress)
    else:
        mad_dir = Path(mad)
    data = f"mad:{mad_dir}"
    if model is None:
        from clipspace.train import train

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
    clip_model, tok = load_model_and_tokenizer(clip_dir)
    before = evaluate_run(clip_model, tok, data, clip_dir, s["eval_samples"], progress)
    # 3. fine-tune
    over = dict(FINETUNE_PRESETS["re"])
    over.update({"optim.lr": lr or DEFAULT_LR, "data.batch_size": batch or s["batch"],
                 "run.output_dir": str(out), "run.name": "radial", "run.progress": progress,
                 "run.tensorboard": False, "run.threads": 1})  # tiny steps: 1 thread is fastest
    ft_dir = finetune(clip_dir, resolve("clip", over), data, overwrite=True,
                      steps=steps or s["steps"])
    # 4. after
    ft_model, ft_tok = load_model_and_tokenizer(ft_dir)
    after = evaluate_run(ft_model, ft_tok, data, ft_dir, s["eval_samples"], progress)
    # 5. report
    table, rows = before_after_table(before, after)
    header = (f"# Radial Embedding on MAD: before / after\n\nCLIP run `{clip_dir}`, RE run "
              f"`{ft_dir}`; lr {over['optim.lr']}, batch {over['data.batch_size']}, "
              f"{steps or s['steps']} steps; evaluation on {before['n']} MAD test images.\n\n")
    atomic_write_text(out / "before_after.md", header + table)
    atomic_write_text(out / "before_after.json", json.dumps(rows, indent=2) + "\n")
    html, md = write_report([clip_dir, ft_dir], out / "report",
                            title="Radial Embedding fine-tuning on MAD")
    print(header + table)
    print(f"report: {html}")
    return {"rows": rows, "clip": str(clip_dir), "radial": str(ft_dir), "report": str(html),
            "table": str(out / "before_after.md")}


__all__ = ["DEFAULT_LR", "before_after_table", "evaluate_run", "hierarchy_empty_root",
           "reproduce_radial"]
