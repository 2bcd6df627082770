"""``clipspace reproduce entailment``: EuCLIP (Chou and Alam 2024) Fig. 2 and 4 on MAD.

clip, euclip and meru are trained with the same towers and budget (``common.mad_recipe``), each
with entailment weight 0 and, where the geometry has an origin (``losses.check_terms``), with a
weight w > 0. For every run the distance of each test image and caption to [ROOT] is measured
with the paper's roots (``analysis.gap.paper_root_distances``: CLIP the scaled cosine distance to
the normalised mean of all embeddings, EuCLIP and MERU the distance to the origin) and drawn as
one histogram panel per run, the runs of a geometry on one shared x axis.

Rule of the verdict (``entailment_checks``): every run with w > 0 must have its median text
nearer the root than its median image, and in every geometry trained with both weights the
separation (median image - median text) / (median image + median text) must be larger with
w > 0 than with w = 0. All checks hold: agrees; none: disagrees; some: partly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from clipspace.analysis.gap import paper_root_distances
from clipspace.analysis.plots import plot_root_distance_panels
from clipspace.config import PRESETS
from clipspace.eval.embed import embed
from clipspace.experiments.common import (
    FULL,
    QUICK,
    Budget,
    ensure_mad,
    evaluate_run,
    finish,
    load_model_and_data,
    mad_recipe,
)
from clipspace.experiments.registry import Experiment, Option, names_parser, number_parser, register
from clipspace.geometry import get_geometry
from clipspace.losses import check_terms
from clipspace.report import Section, Table
from clipspace.train import train
from clipspace.tree import get_dotted

PRESET_CHOICES: tuple[str, ...] = ("clip", "euclip", "meru")
#: quick: 100 digits (2,400 training images), 60 steps of 64, 300 test images
QUICK_BUDGET = replace(QUICK, digits=100, steps=60, batch_size=64, eval_samples=300, warmup=5)
# full: 5 runs x 1,300 steps of 128 (17 min 3 s measured on an idle 2-core CPU; 1,800 steps
# would take ~21 min)
FULL_BUDGET = replace(FULL, steps=1300)
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
CLAIM = ("Distance to [ROOT] (Fig. 2 and 4): texts lie nearer the root than images; with the "
         "entailment loss, texts move towards the root and images away in EuCLIP and MERU. CLIP "
         "has no origin: its root is the mean of the normalised embeddings, and it takes no "
         "entailment loss.")


@dataclass(frozen=True)
class Cell:
    """One training run: a preset with an entailment weight."""

    preset: str
    weight: float

    @property
    def name(self) -> str:
        return f"{self.preset}-entail{self.weight:g}"

    @property
    def geometry(self) -> str:
        return str(PRESETS[self.preset]["geometry.name"])


def plan_cells(presets: Sequence[str], weight: float) -> tuple[list[Cell], list[dict[str, str]]]:
    """(runs that exist, [{"run", "reason"}] of those that do not): weight 0 and ``weight``
    for each preset, kept where ``losses.check_terms`` accepts the preset's terms."""
    cells, missing = [], []
    for preset in presets:
        p = PRESETS[preset]
        for w in (0.0, weight):
            cell = Cell(preset, w)
            try:
                check_terms(get_geometry(cell.geometry), p["loss.contrastive"], w,
                            float(p.get("loss.centroid_weight", 0.0)))
            except ValueError as err:
                missing.append({"run": cell.name, "reason": str(err)})
                continue
            cells.append(cell)
    return cells, missing


def root_stats(dists: dict[str, np.ndarray]) -> dict[str, Any]:
    """Medians and quantiles of image and text distance to [ROOT]; ``separation`` =
    (median image - median text) / (median image + median text), > 0 when texts are nearer."""
    mi, mt = float(np.median(dists["image"])), float(np.median(dists["text"]))
    total = mi + mt
    return {
        "median_image": mi, "median_text": mt, "text_nearer": mt < mi,
        "separation": (mi - mt) / total if total > 0 else 0.0,
        "quantiles": {name: [float(q) for q in np.quantile(d, QUANTILES)]
                      for name, d in dists.items()},
        "n": int(len(dists["image"])),
    }


def entailment_checks(cells: Sequence[Cell], stats: dict[str, dict[str, Any]]
                      ) -> list[tuple[str, bool]]:
    """The claim's checks, as (sentence, holds) pairs (module docstring: the rule)."""
    checks = []
    for cell in cells:
        s = stats[cell.name]
        if cell.weight > 0:
            checks.append((f"{cell.name}: median text {s['median_text']:.4g} "
                           f"{'<' if s['text_nearer'] else '>='} median image "
                           f"{s['median_image']:.4g}", bool(s["text_nearer"])))
    for preset in dict.fromkeys(c.preset for c in cells):
        weights = sorted(c.weight for c in cells if c.preset == preset)
        if len(weights) < 2:
            continue
        s0 = stats[Cell(preset, weights[0]).name]["separation"]
        s1 = stats[Cell(preset, weights[-1]).name]["separation"]
        checks.append((f"{preset}: separation {s0:+.3f} at weight 0 -> {s1:+.3f} at weight "
                       f"{weights[-1]:g}", s1 > s0))
    return checks


def verdict_of(checks: Sequence[tuple[str, bool]]) -> str:
    """agrees (all hold), disagrees (none), partly (some), not comparable (no check)."""
    if not checks:
        return "not comparable"
    held = sum(ok for _, ok in checks)
    return "agrees" if held == len(checks) else "disagrees" if held == 0 else "partly"


def finding_text(checks: Sequence[tuple[str, bool]], stats: dict[str, dict[str, Any]],
                 missing: Sequence[dict[str, str]]) -> str:
    """The finding: each check with its outcome, the runs without entailment, the missing runs."""
    parts = [f"{text} ({'holds' if ok else 'does not hold'})" for text, ok in checks]
    for name, s in stats.items():
        if name.endswith("entail0"):
            where = "nearer" if s["text_nearer"] else "not nearer"
            parts.append(f"without entailment, {name.rsplit('-', 1)[0]}'s texts are {where} the "
                         f"root than its images (separation {s['separation']:+.3f})")
    parts += [f"{m['run']} does not exist: {m['reason']}" for m in missing]
    return "; ".join(parts) + "."


def _distances(run_dir: Path, data: str, max_samples: int) -> dict[str, np.ndarray]:
    """The paper's root distances of the run's test images and their captions."""
    model, dataset, tok = load_model_and_data(run_dir, data)
    emb = embed(model, dataset, tok, max_samples=max_samples, progress=False)
    scalars = model.logged_scalars()
    return paper_root_distances(emb.image, emb.text, model.geometry,
                                scalars["curv"].float().cpu(), float(scalars["logit_scale"]))


def _run_cell(cell: Cell, mad: Path, out: Path, budget: Budget, seed: int
              ) -> tuple[Path, dict[str, Any], dict[str, np.ndarray]]:
    """Train one cell, evaluate it (zero-shot, retrieval) and measure its root distances."""
    cfg = mad_recipe(cell.preset, mad, out / "runs", budget, seed,
                     {"loss.entail_weight": cell.weight, "run.name": cell.name})
    run_dir = Path(train(cfg, overwrite=True))
    data = f"mad:{mad}"
    metrics = evaluate_run(run_dir, data, suites=("zeroshot", "retrieval"),
                           max_samples=budget.eval_samples, analyse=False)
    return run_dir, metrics, _distances(run_dir, data, budget.eval_samples)


def _table(cells: Sequence[Cell], stats: dict[str, dict[str, Any]],
           metrics: dict[str, dict[str, Any]]) -> Table:
    rows = []
    for c in cells:
        s, m = stats[c.name], metrics[c.name]
        rows.append([c.name, c.geometry, f"{c.weight:g}", f"{s['median_image']:.4g}",
                     f"{s['median_text']:.4g}", f"{s['separation']:+.3f}",
                     *(f"{float(get_dotted(m, k)):.3f}" for k in
                       ("zeroshot.digit.top1", "retrieval.i2t_r1", "retrieval.t2i_r1"))])
    return Table(header=["run", "geometry", "entail w", "median rho image", "median rho text",
                         "separation", "digit top-1", "I->T R@1", "T->I R@1"], rows=rows,
                 caption="rho: distance to [ROOT] (sphere: s (1 - cos) to the normalised mean; "
                 "otherwise to the origin); separation = (med img - med txt) / (med img + "
                 "med txt)")


def _figures(cells: Sequence[Cell], dists: dict[str, dict[str, np.ndarray]], fig_dir: Path
             ) -> list[Path]:
    """One figure per geometry: a panel per entailment weight on a shared x axis."""
    paths = []
    for preset in dict.fromkeys(c.preset for c in cells):
        group = [c for c in cells if c.preset == preset]
        panels = {f"{c.preset} ({c.geometry}), entailment weight {c.weight:g}": dists[c.name]
                  for c in group}
        paths.append(plot_root_distance_panels(
            panels, fig_dir / f"root_distance_{preset}.png",
            title=f"{preset}: distance to [ROOT] of test images and captions"))
    return paths


def reproduce_entailment(
    out: str | Path = "reproduce-entailment",
    quick: bool = False,
    workers: int = 2,
    seed: int = 0,
    presets: Sequence[str] = PRESET_CHOICES,
    entail_weight: float = 0.2,
) -> dict[str, Any]:
    """Train every existing (preset, weight) cell, measure distances to [ROOT], write
    results.json, section.json, figures/ and report/; returns the results tree."""
    budget = QUICK_BUDGET if quick else FULL_BUDGET
    out = Path(out)
    cells, missing = plan_cells(presets, entail_weight)
    mad = ensure_mad(out / "mad", budget.digits, workers, seed)
    run_dirs, metrics, stats, dists = [], {}, {}, {}
    for i, cell in enumerate(cells, 1):
        run_dir, metrics[cell.name], dists[cell.name] = _run_cell(cell, mad, out, budget, seed)
        run_dirs.append(run_dir)
        stats[cell.name] = s = root_stats(dists[cell.name])
        print(f"[entailment] {i}/{len(cells)} {cell.name}: median rho image "
              f"{s['median_image']:.4g}, text {s['median_text']:.4g}, separation "
              f"{s['separation']:+.3f}", flush=True)
    checks = entailment_checks(cells, stats)
    verdict = verdict_of(checks)
    table = _table(cells, stats, metrics)
    figures = _figures(cells, dists, out / "figures")
    missing_table = Table(header=["run", "why it does not exist"],
                          rows=[[m["run"], m["reason"]] for m in missing],
                          caption="combinations the losses refuse (losses.check_terms)")
    section = Section(
        title="Distance to [ROOT] with and without the entailment loss", paper="EuCLIP",
        claim=CLAIM, finding=finding_text(checks, stats, missing), verdict=verdict,
        tables=[table, missing_table] if missing else [table], figures=figures,
        headline={f"{n} separation": s["separation"] for n, s in stats.items()})
    results = {"budget": vars(budget), "entail_weight": entail_weight, "runs": {
        c.name: {"preset": c.preset, "geometry": c.geometry, "entail_weight": c.weight,
                 **stats[c.name], "zeroshot_digit_top1": get_dotted(metrics[c.name],
                                                                    "zeroshot.digit.top1"),
                 "i2t_r1": get_dotted(metrics[c.name], "retrieval.i2t_r1"),
                 "t2i_r1": get_dotted(metrics[c.name], "retrieval.t2i_r1")} for c in cells},
        "missing": missing, "checks": [{"check": t, "holds": ok} for t, ok in checks],
        "verdict": verdict}
    return finish(out, "entailment", results, section, run_dirs,
                  "EuCLIP: distance to [ROOT] and entailment")


parse_presets = names_parser("--presets", PRESET_CHOICES)


parse_weight = number_parser("--entail-weight", float, above=0)


register(Experiment(
    name="entailment", paper="EuCLIP", run=reproduce_entailment,
    help="EuCLIP Fig. 2/4: distance to [ROOT] of images and texts, entailment weight 0 and > 0",
    description="Trains clip, euclip and meru on MAD with entailment weight 0 and (where the "
    "geometry has an origin) > 0, histograms each run's image and text distances to [ROOT] "
    "(the paper's roots) and compares the medians with the paper's claim.",
    options=(Option("--presets", "comma-separated presets (clip, euclip, meru)",
                    ",".join(PRESET_CHOICES), parse_presets),
             Option("--entail-weight", "the entailment weight > 0 of the second run", "0.2",
                    parse_weight)),
))

__all__ = ["Cell", "entailment_checks", "finding_text", "parse_presets", "parse_weight",
           "plan_cells", "reproduce_entailment", "root_stats", "verdict_of"]
