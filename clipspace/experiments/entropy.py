"""``clipspace reproduce entropy``: logit entropy, temperature and the modality gap, Two Effects,
One Trigger (Schrodi et al., ICLR 2025), Sec. 6.2, Fig. 8, on MAD.

1. CLIP trained on full captions (``data.num_attrs = 5``: every attribute named);
2. continued from its weights (``model.pretrained``) on captions with fewer attributes
   (``--finetune-attrs k``, default 1), twice: with a learnable temperature, and with the
   temperature frozen at its pretrained value (``loss.learn_logit_scale = false``); during
   fine-tuning ``run.analysis_every`` logs ``dyn/...`` (L2M, RMG, logit entropy) of a fixed
   training subset into metrics.jsonl;
3. on the MAD test split with k-attribute captions, for the pretrained model (the start of
   fine-tuning) and both fine-tuned models: the mean per-sample logit entropy
   H_i = -sum_j p_ij log p_ij, p_i = softmax_j(logit_scale * cos(img_i, txt_j)) (both directions,
   ``analysis.entropy.dynamics_stats`` on ``ClipModel.logits``), L2M and RMG, and the InfoNCE
   loss of the same logits.

The verdict rule (``checks``, ``verdict``) reads three checks of the test numbers:
  A. entropy rises during fine-tuning in both runs (end > start);
  B. the learnable temperature rises (the logit scale falls: end < start);
  C. the gap widens more with the frozen temperature:
     L2M(frozen) - L2M(start) > L2M(learnable) - L2M(start).
All three -> agrees; one or two -> partly; none -> disagrees; any check on a NaN -> not
comparable.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from clipspace.analysis.plots import plot_curves_by_step
from clipspace.eval.datasets import load_eval_dataset
from clipspace.eval.embed import embed
from clipspace.experiments.common import (
    DYNAMICS_PAIRS,
    FULL,
    QUICK,
    dynamics_of,
    ensure_mad,
    evaluate_run,
    finish,
    load_model_and_data,
    mad_recipe,
)
from clipspace.experiments.registry import Experiment, Option, number_parser, register
from clipspace.losses import infonce
from clipspace.report import Section, Table
from clipspace.train import train
from clipspace.train.logger import read_metrics

PAPER = "Two Effects, One Trigger (Schrodi et al., ICLR 2025)"
CLAIM = ("Sec. 6.2, Fig. 8: the modality gap is tied to the entropy of the logits. Captions with "
         "less information call for higher-entropy logits; fine-tuned on fewer attributes, a "
         "model with a learnable temperature raises the entropy by raising the temperature "
         "(lowering the logit scale), while a model whose temperature is frozen has to widen the "
         "modality gap instead.")
FULL_ATTRS = 5
#: fine-tuning steps per run (quick, full); the pretraining run uses the budget's steps
FINETUNE_STEPS = {"quick": 60, "full": 600}
TEMPERATURES = ("learnable", "frozen")
#: (column, key of ``split_stats``) of the table
COLUMNS = (("entropy (nats)", "entropy"), ("entropy / log N", "entropy_rel"), ("L2M", "l2m"),
           ("RMG", "rmg"), ("test loss", "loss"), ("logit scale", "logit_scale"),
           ("train loss", "train_loss"))
#: metrics.jsonl keys plotted against step (``dyn/``: the run.analysis_every hook)
CURVES = ("loss", "logit_scale", "dyn/entropy", "dyn/l2m", "dyn/rmg")


def split_stats(run_dir: Path, mad: Path, num_attrs: int, max_samples: int) -> dict[str, float]:
    """Entropy, gap, alignment/uniformity (``common.dynamics_of``), InfoNCE loss and logit scale
    of the model of ``run_dir`` on (a seeded subset of ``max_samples`` of) the MAD test split
    with ``num_attrs``-attribute captions, all from the same pairs and logits."""
    spec = f"mad:{mad}"
    model, _, tok = load_model_and_data(run_dir, spec)
    model.config.data.num_attrs = num_attrs  # evaluation captions follow the model's config
    dataset = load_eval_dataset(spec, model, "test")
    emb = embed(model, dataset, tok, max_samples=max_samples, progress=False)
    stats = dynamics_of(model, emb, max_pairs=len(emb))  # every embedded pair
    with torch.no_grad():
        loss = float(infonce(model.logits(emb.image, emb.text)))
        scale = float(model.objective.logit_scale())
    return {**stats, "loss": loss, "logit_scale": scale}


def last_train_loss(run_dir: Path) -> float:
    """The last logged training loss of a run (NaN when none was logged)."""
    losses = [r["loss"] for r in read_metrics(run_dir) if "loss" in r]
    return float(losses[-1]) if losses else math.nan


def checks(start: Mapping[str, float], ends: Mapping[str, Mapping[str, float]]
           ) -> dict[str, bool | None]:
    """The three checks of the module docstring (None where a number is NaN); ``ends`` maps
    "learnable" / "frozen" to their test stats."""
    learn, frozen = ends["learnable"], ends["frozen"]
    values = {
        "A": [(e["entropy"], start["entropy"]) for e in (learn, frozen)],
        "B": [(start["logit_scale"], learn["logit_scale"])],
        "C": [(frozen["l2m"] - start["l2m"], learn["l2m"] - start["l2m"])],
    }
    return {k: None if any(not math.isfinite(x) for pair in v for x in pair)
            else all(a > b for a, b in v) for k, v in values.items()}


def verdict(result: Mapping[str, bool | None]) -> str:
    """All checks hold -> agrees, some -> partly, none -> disagrees, any unknown -> not
    comparable."""
    if any(v is None for v in result.values()):
        return "not comparable"
    held = sum(bool(v) for v in result.values())
    return "agrees" if held == len(result) else "partly" if held else "disagrees"


def finding_text(start: Mapping[str, float], ends: Mapping[str, Mapping[str, float]],
                 result: Mapping[str, bool | None], k: int) -> str:
    """What this run shows, from the numbers the checks read."""
    def change(run: str, key: str) -> str:
        return f"{start[key]:.3f} -> {ends[run][key]:.3f}"

    def mark(name: str) -> str:
        return {True: "holds", False: "does not hold", None: "not measurable"}[result[name]]

    return (f"Fine-tuned on {k}-attribute captions, test logit entropy went "
            f"{change('learnable', 'entropy')} (learnable temperature) and "
            f"{change('frozen', 'entropy')} (frozen) [A {mark('A')}]; "
            f"the learnable logit scale went {change('learnable', 'logit_scale')} [B {mark('B')}]; "
            f"L2M went {change('learnable', 'l2m')} (learnable) and {change('frozen', 'l2m')} "
            f"(frozen) [C {mark('C')}].")


def headline(start: Mapping[str, float], ends: Mapping[str, Mapping[str, float]]
             ) -> dict[str, float]:
    """Entropy and L2M change (end - start) of each fine-tuning; NaN changes are left out
    (report JSON holds no NaN)."""
    out = {f"{q} change ({t} T)": ends[t][key] - start[key]
           for q, key in (("entropy", "entropy"), ("L2M", "l2m")) for t in TEMPERATURES}
    return {k: v for k, v in out.items() if math.isfinite(v)}


def _row(label: str, stats: Mapping[str, float]) -> list[str]:
    return [label] + [f"{stats.get(key, math.nan):.3f}" for _, key in COLUMNS]


def _curves(runs: Mapping[str, Path], path: Path) -> Path:
    """Training loss, logit scale and the dyn/ quantities against step, both fine-tunings on
    shared axes (quantities that were not logged are left out)."""
    metrics = {name: read_metrics(d) for name, d in runs.items()}
    panels = {}
    for key in CURVES:
        series = {name: ([r["step"] for r in rows if key in r], [r[key] for r in rows if key in r])
                  for name, rows in metrics.items()}
        if any(steps for steps, _ in series.values()):
            panels[key] = series
    return plot_curves_by_step(panels, path)


parse_finetune_attrs = number_parser("--finetune-attrs", int, 0, FULL_ATTRS - 1)


def _finetune(base_dir: Path, temperature: str, ctx: dict[str, Any]) -> Path:
    """Continue ``base_dir`` on ``ctx['k']``-attribute captions, temperature learnable or frozen."""
    steps = ctx["steps"]
    budget = dataclasses.replace(ctx["budget"], steps=steps)
    cfg = mad_recipe("clip", ctx["mad"], ctx["out"] / "runs", budget, ctx["seed"], {
        "data.num_attrs": ctx["k"], "data.redraw_per_epoch": False,
        "model.pretrained": str(base_dir), "loss.learn_logit_scale": temperature == "learnable",
        "run.analysis_every": max(steps // 10, 1), "run.name": f"clip-k{ctx['k']}-{temperature}"})
    return Path(train(cfg, overwrite=True))


def reproduce_entropy(
    out: str | Path = "reproduce-entropy",
    quick: bool = False,
    workers: int = 2,
    seed: int = 0,
    finetune_attrs: int = 1,
) -> dict[str, Any]:
    """Pretrain on 5-attribute captions, fine-tune on ``finetune_attrs`` with a learnable and a
    frozen temperature; writes results.json, section.json, entropy_curves.png and report/."""
    out = Path(out)
    budget = QUICK if quick else FULL
    k, n_eval = finetune_attrs, min(budget.eval_samples, DYNAMICS_PAIRS)
    mad = ensure_mad(out / "mad", budget.digits, workers, seed)
    ctx = {"mad": mad, "out": out, "budget": budget, "seed": seed, "k": k,
           "steps": FINETUNE_STEPS["quick" if quick else "full"]}
    base_dir = Path(train(mad_recipe("clip", mad, out / "runs", budget, seed, {
        "data.num_attrs": FULL_ATTRS, "data.redraw_per_epoch": False,
        "run.name": f"clip-k{FULL_ATTRS}"})))
    runs = {t: _finetune(base_dir, t, ctx) for t in TEMPERATURES}
    for run_dir in (base_dir, *runs.values()):  # eval.json: the report's per-run rows
        evaluate_run(run_dir, f"mad:{mad}", max_samples=budget.eval_samples, progress=False,
                     analyse=False)
    pretrained = {**split_stats(base_dir, mad, FULL_ATTRS, n_eval),
                  "train_loss": last_train_loss(base_dir)}
    start = split_stats(base_dir, mad, k, n_eval)
    ends = {t: {**split_stats(d, mad, k, n_eval), "train_loss": last_train_loss(d)}
            for t, d in runs.items()}
    result = checks(start, ends)
    v = verdict(result)
    table = Table(["model", *(c for c, _ in COLUMNS)], [
        _row(f"pretrained, {FULL_ATTRS}-attribute test captions", pretrained),
        _row(f"pretrained, {k}-attribute test captions (start)", start),
        *(_row(f"fine-tuned ({k}-attribute captions), {t} temperature", ends[t])
          for t in TEMPERATURES),
    ], caption=f"MAD test split, {start['n']} pairs; entropy over all N captions per image")
    fig = _curves({f"{t} temperature": d for t, d in runs.items()}, out / "entropy_curves.png")
    sec = Section(
        title="Logit entropy, temperature and gap (Sec. 6.2, Fig. 8)", paper=PAPER, claim=CLAIM,
        finding=finding_text(start, ends, result, k), verdict=v, tables=[table],
        figures=[str(fig)],
        headline=headline(start, ends))
    summary = {"finetune_attrs": k, "finetune_steps": ctx["steps"], "pretrain_steps": budget.steps,
               "pretrained": pretrained, "start": start, "finetuned": ends, "checks": result,
               "verdict": v}
    print(f"[entropy] checks {result}")
    return finish(out, "entropy", summary, sec, [base_dir, *runs.values()],
                  "Logit entropy and the modality gap on MAD")


register(Experiment(
    name="entropy", paper="Two Effects, One Trigger", run=reproduce_entropy,
    help="Two Effects, One Trigger Sec. 6.2: fine-tune on fewer attributes with a learnable and "
    "a frozen temperature; logit entropy, gap and loss",
    description="Trains CLIP on MAD with 5-attribute captions, continues it on fewer attributes "
    "with a learnable and with a frozen temperature, and reports per-sample logit entropy, L2M / "
    "RMG and loss on the test split side by side (table, curves, report section).",
    options=(Option("--finetune-attrs", "attributes per caption when fine-tuning (0..4)", 1,
                    parse_finetune_attrs),),
))

__all__ = ["checks", "finding_text", "headline", "last_train_loss", "parse_finetune_attrs",
           "reproduce_entropy", "split_stats", "verdict"]
