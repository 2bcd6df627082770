"""What every experiment shares: the budget type, MAD on disk, the shared training recipe, one
evaluate-a-run function (one embedding pass: suites, analysis, figures) and the result table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from clipspace.analysis import plots
from clipspace.analysis.entropy import dynamics_stats
from clipspace.analysis.gap import mean_difference, root_distances
from clipspace.analysis.run import run_analysis
from clipspace.config import Config, resolve
from clipspace.data.mad_generate import generate_mad
from clipspace.data.tokenizer import get_tokenizer
from clipspace.eval.datasets import dataset_tokenizer, load_eval_dataset
from clipspace.eval.embed import Embeddings, embed
from clipspace.eval.evaluate import DEFAULT_SUITES, evaluate, evaluate_embeddings
from clipspace.eval.suites import SuiteContext
from clipspace.geometry import GEOMETRIES
from clipspace.io import atomic_write_text
from clipspace.models import load_model_and_tokenizer
from clipspace.report import Section, write_report
from clipspace.report.sample import (
    SAMPLE_FILE,
    SAMPLE_PAIRS,
    EmbeddingSample,
    sample_rows,
    take_sample,
)
from clipspace.tree import get_dotted, to_json


@dataclass(frozen=True)
class Budget:
    """Data and compute of one experiment scale."""

    digits: int  # source MNIST digits used (x24 variants); 0 = all 5,000
    steps: int
    batch_size: int
    eval_samples: int
    warmup: int


QUICK = Budget(digits=250, steps=120, batch_size=128, eval_samples=1000, warmup=10)
# 1,800 steps of 128 (230k samples, ~2.4 epochs of the 96k training images) fit the 15-minute
# budget with the evaluation of four presets; batch 128 beat 256 at the same samples
FULL = Budget(digits=0, steps=1800, batch_size=128, eval_samples=4000, warmup=100)

TABLE_KEYS: dict[str, str] = {
    "digit": "zeroshot.digit.top1",
    "digit (score ens.)": "zeroshot_score_ensemble.digit.top1",
    "colour": "zeroshot.colour.top1",
    "scale": "zeroshot.scale.top1",
    "stroke": "zeroshot.stroke.top1",
    "I->T R@1": "retrieval.i2t_r1",
    "T->I R@1": "retrieval.t2i_r1",
    "probe": "linear_probe.digit.accuracy",
    "hier P": "hierarchy.precision",
    "hier R": "hierarchy.recall",
    "tau_d": "hierarchy.tau_d",
    "RMG": "gap.rmg",
    "L2M": "gap.l2m",
    "MOAD": "moad.moad",
}
# per-sample logit entropy and alignment / uniformity are O(N^2): at most this many test pairs
DYNAMICS_PAIRS = 1024
# experiments probe the digit only: each attribute probe costs ~3 s (``clipspace eval`` does all)
PROBE_KEYS: tuple[str, ...] = ("digit",)


def ensure_mad(root: Path, digits: int, workers: int, seed: int, mnist: str = "embedded",
               progress: bool = True) -> Path:
    """Generate MAD under ``root`` unless a complete dataset of that size is already there."""
    manifest = root / "manifest.json"
    if manifest.exists():
        info = json.loads(manifest.read_text())
        if info.get("seed") == seed and info.get("limit", 0) == digits:
            return root
    return generate_mad(root, mnist=mnist, workers=workers, seed=seed, overwrite=True,
                        limit=digits, progress=progress)


def mad_recipe(preset: str, mad: Path, runs: Path, budget: Budget, seed: int,
               overrides: dict[str, Any] | None = None) -> Config:
    """The shared recipe: same towers, data, steps and optimiser for every preset."""
    base: dict[str, Any] = {
        "data.train": f"mad:{mad}",
        "data.batch_size": budget.batch_size,
        "model.name": "mad-tiny",
        "model.image.norm": "batch",  # 92.9% vs 79.8% digit accuracy at equal steps (GroupNorm)
        # captions: the digit + 2 of the 5 attributes, drawn again every epoch, so every
        # attribute is named over training (95.6% digit vs 94.1% with all 5 in every caption)
        "data.num_attrs": 2,
        "data.redraw_per_epoch": True,
        "optim.steps": budget.steps,
        "optim.warmup_steps": budget.warmup,
        "optim.lr": 3e-3,
        "optim.weight_decay": 0.1,
        "run.output_dir": str(runs),
        "run.name": preset,
        "run.seed": seed,
        "run.log_every": 10,
    }
    base.update(overrides or {})
    return resolve(preset, base)


def comparison_table(results: dict[str, dict[str, Any]], keys: dict[str, str] = TABLE_KEYS) -> str:
    """Plain-text table: one row per run, one column per headline metric."""
    rows = [["run", *keys]]
    for name, res in results.items():
        values = [get_dotted(res, dotted) for dotted in keys.values()]
        rows.append([name, *("-" if v is None else f"{float(v):.3f}" for v in values)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows)


def analyse_embeddings(model: Any, emb: Embeddings, fig_dir: Path) -> dict[str, Any]:
    """Gap, object bias and dimension ablation of one model's test embeddings, with figures
    (root distances in the model's own geometry)."""
    labels = {**emb.labels, "caption_id": emb.caption_ids()}
    img, txt = emb.image, emb.text
    curv = model.curv().detach().float().cpu()
    out: dict[str, Any] = {
        "gap": run_analysis("gap", img, txt, labels, geometry=model.geometry, curv=curv),
        "moad": run_analysis("moad", img, txt, labels),
        "ablation": run_analysis("ablate-dims", img, txt, labels, plot_dir=fig_dir, max_k=20),
    }
    plots.plot_root_distance(root_distances(img, txt, model.geometry, curv),
                             fig_dir / "root_distance.png")
    plots.plot_mean_difference(mean_difference(img, txt).numpy(), fig_dir / "mean_difference.png")
    return out


@torch.no_grad()
def dynamics_of(model: Any, emb: Embeddings, max_pairs: int = DYNAMICS_PAIRS) -> dict[str, Any]:
    """``analysis.entropy.dynamics_stats`` (L2M, RMG, per-sample logit entropy of softmax over
    ``model.logits`` = logit_scale * similarity, alignment, uniformity; Two Effects Fig. 7b in
    Sec. 6.1, entropy in Sec. 6.2) of a seeded subset of at most ``max_pairs`` test pairs."""
    rows = torch.from_numpy(sample_rows(len(emb), max_pairs))
    img, txt = emb.image[rows], emb.text[rows]
    return {**dynamics_stats(img, txt, model.logits(img, txt).float().cpu()), "n": len(rows)}


def save_embedding_sample(model: Any, emb: Embeddings, path: Path,
                          n: int = SAMPLE_PAIRS) -> Path:
    """The report's ``embeddings_sample.npz`` (``report.sample``): ``n`` seeded test pairs with
    labels and captions, plus every pair's distance to [ROOT] in the model's geometry and the
    per-dimension mean difference."""
    curv = model.curv().detach().float().cpu()
    dists = root_distances(emb.image, emb.text, model.geometry, curv)
    pairs = take_sample(emb.image.numpy(), emb.text.numpy(), emb.captions, emb.labels,
                        sample_rows(len(emb), n))
    name = next(k for k, v in GEOMETRIES.items() if v is model.geometry)
    return EmbeddingSample(
        **pairs, geometry=name, curv=float(curv), root_dist_image=dists["image"],
        root_dist_text=dists["text"],
        mean_difference=mean_difference(emb.image, emb.text).numpy()).save(path)


def load_model_and_data(
    model_spec: str | Path, data: str, split: str = "test", device: str = "cpu",
    tokenizer: str | None = None, **data_options: Any,
) -> tuple[Any, Any, Any]:
    """(model in eval mode on ``device``, dataset, tokenizer) of a model spec and a data spec:
    the tokenizer is ``tokenizer`` (a tokenizer.json), else the model's own, else the data's;
    ``data_options``: image_dir, classnames, templates, label_columns of ``load_eval_dataset``."""
    model, tok = load_model_and_tokenizer(model_spec)
    model.to(device).eval()
    if tokenizer:
        tok = get_tokenizer(tokenizer, context_length=model.context_length)
    dataset = load_eval_dataset(data, model, split, **data_options)
    return model, dataset, tok or dataset_tokenizer(dataset, model)


def evaluate_run(
    run_dir: Path,
    data: str,
    suites: Sequence[str] = DEFAULT_SUITES,
    max_samples: int = 0,
    progress: bool = True,
    empty_root: bool = False,
    analyse: bool = True,
    write: bool = True,
) -> dict[str, Any]:
    """Evaluate a finished run on the test split of ``data`` from one embedding pass: the
    suites, the score-ensemble zero-shot (fairer to angle-scored ATMG), with ``empty_root``
    the hierarchy suite again with [ROOT] = the text point of "" (Radial Embedding), and with
    ``analyse`` the gap / object bias / ablation analysis and figures; always ``dynamics``
    (``dynamics_of``: gap, logit entropy, alignment / uniformity of <= 1024 pairs). Writes
    ``eval.json``, ``embeddings_sample.npz`` (for the report) and with ``analyse``
    ``analysis.json`` and ``figures/`` into the run directory. ``write=False`` writes nothing
    and skips the analysis (a model the user owns: a pretrained base directory)."""
    model, dataset, tok = load_model_and_data(run_dir, data)
    emb = embed(model, dataset, tok, max_samples=max_samples, progress=progress)
    results = evaluate(model, data, suites, tokenizer=tok, embeddings=emb, progress=progress,
                       probe_samples=max_samples or 5000, probe_keys=PROBE_KEYS)
    ctx = SuiteContext(model=model, emb=emb, tokenizer=tok)
    if "zeroshot" in suites:
        ctx.zeroshot_ensemble = "score"
        results["zeroshot_score_ensemble"] = evaluate_embeddings(ctx, ["zeroshot"])["zeroshot"]
    if "hierarchy" in suites and empty_root:
        ctx.hierarchy_root = "empty"
        results["hierarchy_empty_root"] = evaluate_embeddings(ctx, ["hierarchy"])["hierarchy"]
    results["dynamics"] = dynamics_of(model, emb)
    results["model"] = str(run_dir)
    if not write:
        return results
    atomic_write_text(run_dir / "eval.json", to_json(results) + "\n")
    save_embedding_sample(model, emb, run_dir / SAMPLE_FILE)
    if not analyse:
        return results
    analysis = analyse_embeddings(model, emb, run_dir / "figures")
    atomic_write_text(run_dir / "analysis.json", to_json(analysis) + "\n")
    return {**results, **analysis}




def finish(out: Path, name: str, results: dict[str, Any], section: Section,
           run_dirs: Sequence[Path], title: str, progress: bool = False) -> dict[str, Any]:
    """The end of every experiment: ``results.json``, ``section.json`` and ``report/`` under
    ``out``; prints the section's tables, its verdict and finding; returns ``results``.
    ``progress``: the report names each step on stderr."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", to_json(results) + "\n")
    section.save(out / "section.json")
    html, _ = write_report(list(run_dirs), out / "report", title=title, sections=[section],
                           progress=progress)
    for table in section.tables:
        print(table.text())
    print(f"[{name}] verdict: {section.verdict}: {section.finding}")
    print(f"[{name}] report: {html}")
    return results


__all__ = [
    "FULL",
    "PROBE_KEYS",
    "QUICK",
    "TABLE_KEYS",
    "DYNAMICS_PAIRS",
    "Budget",
    "analyse_embeddings",
    "comparison_table",
    "dynamics_of",
    "ensure_mad",
    "evaluate_run",
    "finish",
    "load_model_and_data",
    "mad_recipe",
    "save_embedding_sample",
]
