"""``clipspace reproduce gap-dynamics``: Two Effects, One Trigger (Schrodi et al. 2025, Fig. 7b).

Does the contrastive loss close a modality gap? CLIP on MAD twice with the same data, towers and
budget: from the default initialisation and from one with a large gap (``model.init_text_shift``:
every text feature starts shifted by a fixed random vector of that norm). ``run.analysis_every``
(~ steps / 20) logs ``dyn/...`` (L2M, RMG, logit entropy, alignment, uniformity) on a fixed set
of test pairs; the figure draws each quantity against the step, both runs on shared axes.

The verdict is computed from the L2M curves by ``verdict``: the large initial gap *shrinks*
when its final L2M is at most ``1 - SHRINK`` of its initial L2M; a gap is *closed* when its final
L2M is below ``CLOSED``; the two runs *converge* when the large-gap run's excess over the default
run (L2M_large - L2M_default) has fallen to at most ``CONVERGE`` of its initial value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clipspace.analysis.plots import plot_curves_by_step
from clipspace.config import PRESETS, ConfigError
from clipspace.experiments.common import FULL, QUICK, ensure_mad, evaluate_run, finish, mad_recipe
from clipspace.experiments.registry import Experiment, Option, number_parser, register
from clipspace.report import Section, Table
from clipspace.train import train
from clipspace.train.logger import read_metrics

#: the quantities followed during training (``dyn/<key>`` of ``dynamics_stats``) and their labels
QUANTITIES: dict[str, str] = {
    "l2m": "L2M", "rmg": "RMG", "entropy": "logit entropy (nats)",
    "alignment": "alignment", "uniformity": "uniformity",
}
SHRINK = 0.10  # the large gap shrinks: final L2M <= 90 % of the initial L2M
CLOSED = 0.10  # a gap is closed: final L2M < 0.1 (L2M of unit vectors lies in [0, 2])
CONVERGE = 0.5  # the runs converge: the large-gap run's excess falls to <= half its start
CLAIM = ("Training does not close the modality gap: a gap that training starts with shrinks, "
         "but the contrastive loss leaves both runs with a clear gap, set by the data (the "
         "information imbalance) rather than by the initialisation.")
DEFAULT_SHIFT = 30.0  # ~2.7x the norm of a mad-tiny text feature at initialisation (~11)
#: --quick: half the common quick steps (the gap has visibly moved by step 60); 256 pairs
QUICK_DYNAMICS = dataclasses.replace(QUICK, steps=60)
ANALYSIS_SAMPLES = {True: 256, False: 1000}


def dynamics_curves(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"step": [...], <quantity>: [...]}`` from metrics records holding ``dyn/<key>``, one
    entry per step (sorted; a step logged twice keeps its last record)."""
    by_step: dict[int, Mapping[str, Any]] = {}
    for rec in records:
        if "dyn/l2m" in rec:
            by_step[int(rec["step"])] = rec
    steps = sorted(by_step)
    curves: dict[str, Any] = {"step": steps}
    for key in QUANTITIES:
        curves[key] = [float(by_step[s][f"dyn/{key}"]) for s in steps]
    return curves


def gap_change(values: Sequence[float]) -> dict[str, float]:
    """First, last and smallest value of a curve and the relative change (last - first) /
    first (0 when first is 0)."""
    if not values:
        raise ValueError("an empty curve has no change")
    first, last = float(values[0]), float(values[-1])
    return {"initial": first, "final": last, "min": float(min(values)),
            "change": (last - first) / first if first else 0.0}


def verdict(default: Sequence[float], large: Sequence[float]) -> tuple[str, str, dict[str, Any]]:
    """(verdict, finding, facts) from the L2M curves of the default and the large-gap run
    (module docstring: SHRINK, CLOSED, CONVERGE). agrees: the large gap shrinks, neither gap
    closes and the runs converge; partly: the large gap shrinks and neither closes, but the
    runs do not converge; disagrees: a gap closes or the large gap does not shrink."""
    d, g = gap_change(default), gap_change(large)
    excess0, excess1 = g["initial"] - d["initial"], g["final"] - d["final"]
    shrinks = g["final"] <= (1.0 - SHRINK) * g["initial"]
    closed = [name for name, c in (("default", d), ("large-gap", g)) if c["final"] < CLOSED]
    converges = excess0 > 0 and excess1 <= CONVERGE * excess0
    facts = {"default": d, "large_gap": g, "excess_initial": excess0, "excess_final": excess1,
             "shrinks": shrinks, "closed": closed, "converges": converges}
    if closed or not shrinks:
        result = "disagrees"
    else:
        result = "agrees" if converges else "partly"
    shrink_text = (f"the large initial gap {'shrinks' if shrinks else 'does not shrink'} "
                   f"(L2M {g['initial']:.3f} -> {g['final']:.3f}, {100 * g['change']:+.0f}%)")
    default_text = (f"from the default initialisation L2M goes {d['initial']:.3f} -> "
                    f"{d['final']:.3f} ({100 * d['change']:+.0f}%)")
    closed_text = (f"closed (final L2M < {CLOSED}) in: {', '.join(closed)}" if closed
                   else f"neither gap is closed (both final L2M >= {CLOSED})")
    conv_text = (f"the excess over the default run goes {excess0:+.3f} -> {excess1:+.3f} "
                 f"({'converged' if converges else 'not converged'}: "
                 f"rule <= {CONVERGE:.0%} of the start)")
    finding = f"{shrink_text}; {default_text}; {closed_text}; {conv_text}."
    return result, finding, facts


def summary_table(curves: Mapping[str, Mapping[str, Any]], evals: Mapping[str, Any]) -> Table:
    """One row per run: each quantity at the first and the last step, and test R@1."""
    header = ["run", *(f"{QUANTITIES[k]} start -> end" for k in QUANTITIES), "I->T R@1"]
    rows = []
    for name, c in curves.items():
        cells = [f"{c[k][0]:.3f} -> {c[k][-1]:.3f}" for k in QUANTITIES]
        r1 = evals[name].get("retrieval", {}).get("i2t_r1", math.nan)
        rows.append([name, *cells, f"{r1:.3f}"])
    return Table(header=header, rows=rows,
                 caption="first and last analysis step of each run (fixed test pairs)")


def run_gap_dynamics(mad: Path, out: Path, name: str, shift: float, preset: str, budget: Any,
                     seed: int, every: int, samples: int) -> tuple[Path, dict[str, Any]]:
    """Train one run with ``run.analysis_every = every`` on ``samples`` test pairs; its
    run directory and dynamics curves."""
    cfg = mad_recipe(preset, mad, out / "runs", budget, seed, {
        "run.name": f"{preset}-{name}", "model.init_text_shift": shift,
        "data.val": f"mad:{mad}", "run.analysis_every": every,
        "run.analysis_samples": samples})
    run_dir = Path(train(cfg, overwrite=True))
    return run_dir, dynamics_curves(read_metrics(run_dir))


def reproduce_gap_dynamics(
    out: str | Path = "reproduce-gap-dynamics",
    quick: bool = False,
    workers: int = 2,
    seed: int = 0,
    shift: float = DEFAULT_SHIFT,
    preset: str = "clip",
    every: int = 0,
) -> dict[str, Any]:
    """Two runs (default and large-gap initialisation) with the dynamics logged every
    ``every`` steps (0: steps / 20); writes dynamics.png, results.json, section.json and the
    report; returns the results."""
    if not (math.isfinite(shift) and shift > 0):
        raise ConfigError(f"--shift must be a finite number > 0, got {shift!r}")
    budget = QUICK_DYNAMICS if quick else FULL
    out = Path(out)
    every = every or max(1, budget.steps // 20)
    mad = ensure_mad(out / "mad", budget.digits, workers, seed)
    samples = ANALYSIS_SAMPLES[quick]
    curves, evals, run_dirs = {}, {}, []
    for name, s in (("default", 0.0), ("large-gap", shift)):
        run_dir, curves[name] = run_gap_dynamics(mad, out, name, s, preset, budget, seed,
                                                 every, samples)
        evals[name] = evaluate_run(run_dir, f"mad:{mad}", suites=("retrieval",),
                                   max_samples=budget.eval_samples, analyse=False)
        run_dirs.append(run_dir)
        c = curves[name]
        print(f"[gap-dynamics] {name}: L2M {c['l2m'][0]:.3f} -> {c['l2m'][-1]:.3f}, "
              f"RMG {c['rmg'][0]:.3f} -> {c['rmg'][-1]:.3f}, entropy "
              f"{c['entropy'][0]:.2f} -> {c['entropy'][-1]:.2f} over {c['step'][-1]} steps")
    result, finding, facts = verdict(curves["default"]["l2m"], curves["large-gap"]["l2m"])
    panels = {label: {run: (c["step"], c[key]) for run, c in curves.items()}
              for key, label in QUANTITIES.items()}
    fig = plot_curves_by_step(panels, out / "dynamics.png")
    table = summary_table(curves, evals)
    section = Section(
        title="Gap during training (Fig. 7b)", paper="Two Effects, One Trigger", claim=CLAIM,
        finding=finding, verdict=result, tables=[table], figures=[str(fig)],
        headline={"L2M default (end)": facts["default"]["final"],
                  "L2M large-gap (start)": facts["large_gap"]["initial"],
                  "L2M large-gap (end)": facts["large_gap"]["final"]})
    results = {"shift": shift, "every": every, "samples": samples, "curves": curves,
               "verdict": result, "finding": finding, "facts": facts,
               "retrieval": {k: v.get("retrieval", {}) for k, v in evals.items()}}
    return finish(out, "gap-dynamics", results, section, run_dirs,
                  "Gap during training (Two Effects Fig. 7b)")


parse_shift = number_parser("--shift", float, above=0)


parse_every = number_parser("--every", int, low=0)


register(Experiment(
    name="gap-dynamics", paper="Two Effects, One Trigger", run=reproduce_gap_dynamics,
    help="Two Effects, One Trigger Fig. 7b: does training close the modality gap?",
    description="Trains CLIP on MAD from the default and from a large-gap initialisation, logs "
    "L2M, RMG, logit entropy, alignment and uniformity every steps/20 steps and plots them.",
    options=(Option("--shift", "norm of the large-gap run's initial text offset",
                    DEFAULT_SHIFT, parse_shift),
             Option("--preset", "preset trained in both runs", "clip", choices=sorted(PRESETS)),
             Option("--every", "analysis interval in steps (0 = steps / 20)", 0, parse_every)),
))

__all__ = ["dynamics_curves", "gap_change", "reproduce_gap_dynamics", "summary_table",
           "verdict"]
