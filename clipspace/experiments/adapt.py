"""``clipspace reproduce adapt``: a pretrained CLIP moved into MERU's and EuCLIP's geometry with
LoRA adapters, against the same presets trained from scratch on the same budget.

The recent hyperbolic work (HySAC, CVPR 2025; HAC, 2026) adapts a pretrained CLIP into Lorentz
space with low-rank adapters instead of training MERU from scratch, and reports that the adapted
model keeps most of the pretrained model's knowledge. Here the pretrained model is the demo's
clip run (the shared MAD recipe; or ``--base``: any clipspace run or transformers CLIP
directory); each target preset is trained twice for the same steps: LoRA r = 8 on the towers'
attention / MLP layers (every conv of the MAD ConvNet) with the projections and geometry
parameters in full (``clipspace finetune geometry``), and from scratch. All runs are scored on
the MAD test split: zero-shot digit top-1, retrieval R@1, HierarCaps-style hierarchy P / R and
tau_d on MAD chains, and the modality gap (L2M).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clipspace.experiments.common import (
    FULL,
    QUICK,
    ensure_mad,
    evaluate_run,
    finish,
    mad_recipe,
)
from clipspace.experiments.registry import Experiment, Option, names_parser, register
from clipspace.report import Section, Table
from clipspace.train import train
from clipspace.tree import get_dotted

TARGETS: tuple[str, ...] = ("meru", "euclip")
SUITES = ("zeroshot", "retrieval", "hierarchy")
METRICS: dict[str, str] = {
    "digit top-1": "zeroshot.digit.top1",
    "I->T R@1": "retrieval.i2t_r1",
    "T->I R@1": "retrieval.t2i_r1",
    "hier P": "hierarchy.precision",
    "hier R": "hierarchy.recall",
    "tau_d": "hierarchy.tau_d",
    "L2M": "dynamics.l2m",
}
#: the verdict's metrics: what the pretrained model knows (zero-shot, retrieval)
KNOWLEDGE = ("digit top-1", "I->T R@1", "T->I R@1")
TOL = 0.01  # adapted counts as "at least as good" down to this much below scratch
LORA: dict[str, Any] = {"adapt.lora_r": 8, "adapt.lora_alpha": 16.0}
#: pretraining budget (the demo's clip recipe) and the steps of each adapted / scratch run
SCALES: dict[str, dict[str, Any]] = {
    "quick": {"pretrain": dataclasses.replace(QUICK, steps=60, eval_samples=300),
              "steps": 30},
    "full": {"pretrain": FULL, "steps": 600},
}
CLAIM = ("Adapting a pretrained CLIP into another geometry with low-rank adapters keeps most of "
         "its knowledge, so at a small budget the adapted model beats the same geometry trained "
         "from scratch (HySAC, CVPR 2025; HAC, 2026; our reading of their abstracts).")


def scores(model_dir: Path, mad: Path, max_samples: int, own_run: bool) -> dict[str, Any]:
    """Suites + gap of one model on the MAD test split (``evaluate_run``); eval.json is
    written for the report into the runs of this experiment only, never into a user's base."""
    return evaluate_run(model_dir, f"mad:{mad}", suites=SUITES, max_samples=max_samples,
                        progress=False, analyse=False, write=own_run)


def metrics_of(results: dict[str, Any]) -> dict[str, float]:
    out = {}
    for label, key in METRICS.items():
        v = get_dotted(results, key)
        out[label] = float(v) if isinstance(v, (int, float)) else float("nan")
    return out


def verdict(rows: dict[str, dict[str, float]], presets: Sequence[str]) -> tuple[str, str]:
    """Per preset: adapted >= scratch - TOL on every ``KNOWLEDGE`` metric. All presets: agrees;
    some: partly; none: disagrees."""
    wins, parts = 0, []
    for p in presets:
        a, s = rows[f"{p} LoRA"], rows[f"{p} scratch"]
        ok = all(a[m] >= s[m] - TOL for m in KNOWLEDGE)
        wins += ok
        parts.append(f"{p}: adapted vs scratch digit {a['digit top-1']:.3f} vs "
                     f"{s['digit top-1']:.3f}, I->T R@1 {a['I->T R@1']:.3f} vs "
                     f"{s['I->T R@1']:.3f}, T->I R@1 {a['T->I R@1']:.3f} vs "
                     f"{s['T->I R@1']:.3f} ({'keeps up' if ok else 'falls behind'})")
    v = "agrees" if wins == len(presets) else "partly" if wins else "disagrees"
    return v, "; ".join(parts) + f" (tolerance {TOL})."


def result_table(rows: dict[str, dict[str, float]]) -> Table:
    return Table(["model", *METRICS],
                 [[name, *(f"{m[k]:.3f}" for k in METRICS)] for name, m in rows.items()],
                 "Pretrained clip, LoRA-adapted and from-scratch models (MAD test split)")


def pretrained_base(base: str, mad: Path, runs: Path, scale: dict[str, Any],
                    seed: int) -> tuple[Path, bool]:
    """(the pretrained model, whether this experiment trained it): ``base`` if given, else the
    demo's clip recipe trained here."""
    if base:
        return Path(base).expanduser().resolve(), False
    cfg = mad_recipe("clip", mad, runs, scale["pretrain"], seed,
                     {"run.name": "clip-pretrained", "run.progress": False})
    return Path(train(cfg, overwrite=True)), True


def reproduce_adapt(
    out: str | Path = "reproduce-adapt", quick: bool = False, workers: int = 2, seed: int = 0,
    presets: Sequence[str] = TARGETS, base: str = "",
) -> dict[str, Any]:
    """Pretrain (or take ``base``), adapt into each preset with LoRA and train it from scratch
    for the same steps; writes results.json, section.json and report/."""
    t0 = time.perf_counter()
    scale = SCALES["quick" if quick else "full"]
    budget = dataclasses.replace(scale["pretrain"], steps=scale["steps"],
                                 warmup=min(scale["pretrain"].warmup, scale["steps"] // 5))
    out = Path(out)
    mad = ensure_mad(out / "mad", scale["pretrain"].digits, workers, seed)
    base_dir, own = pretrained_base(base, mad, out / "runs", scale, seed)
    n_eval = budget.eval_samples
    rows = {"pretrained clip": metrics_of(scores(base_dir, mad, n_eval, own))}
    run_dirs = [base_dir] if own else []
    for preset in presets:
        for label, extra in ((f"{preset} LoRA", {"adapt.base": str(base_dir), **LORA}),
                             (f"{preset} scratch", {})):
            name = label.replace(" ", "-").lower()
            cfg = mad_recipe(preset, mad, out / "runs", budget, seed,
                             {"run.name": name, "run.progress": False, **extra})
            run_dir = Path(train(cfg, overwrite=True))
            rows[label] = metrics_of(scores(run_dir, mad, n_eval, True))
            run_dirs.append(run_dir)
            print(f"[adapt] {label}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[label].items())
                  + f" ({time.perf_counter() - t0:.0f} s)")
    v, finding = verdict(rows, presets)
    sec = Section(
        title="Adapting a pretrained CLIP into other geometries", paper="HySAC / HAC",
        claim=CLAIM, finding=finding, verdict=v, tables=[result_table(rows)],
        headline={f"{p}: digit top-1, LoRA - scratch":
                  rows[f"{p} LoRA"]["digit top-1"] - rows[f"{p} scratch"]["digit top-1"]
                  for p in presets})
    results = {"base": str(base_dir), "steps": scale["steps"], "lora": LORA, "rows": rows,
               "verdict": v, "tolerance": TOL}
    finish(out, "adapt", results, sec, run_dirs, "Adapting a pretrained CLIP on MAD")
    print(f"[adapt] {time.perf_counter() - t0:.0f} s")
    return results


parse_presets = names_parser("--presets", ("meru", "euclip", "atmg", "clip"))


register(Experiment(
    name="adapt", paper="HySAC / HAC", run=reproduce_adapt,
    help="a pretrained clip adapted into meru and euclip with LoRA vs the same presets from "
    "scratch",
    description="Pretrains clip on MAD (or takes --base: a clipspace run or a transformers CLIP "
    "directory), adapts it into each preset with LoRA r = 8 and trains the preset from scratch "
    "for the same steps; compares zero-shot, retrieval, hierarchy and the gap.",
    options=(Option("--presets", "comma-separated target presets", "meru,euclip",
                    parse_presets),
             Option("--base", "pretrained model instead of the clip run trained here (a "
                    "clipspace run or a transformers CLIP directory)", "")),
))

__all__ = ["parse_presets", "reproduce_adapt", "verdict"]
