"""``clipspace reproduce prevalence``: caption presence and object bias, Two Effects, One Trigger
(Schrodi et al., ICLR 2025), Sec. 5, Fig. 6b, on MAD.

One CLIP run per attribute slot s with ``data.main_object = s`` (s is named in every caption,
as often as the digit; the other k - 1 attribute words come from the remaining slots) and one
baseline run whose k attribute words are drawn from all five slots. For each run, the object
bias against slot s in each modality (``analysis.run.moad_both``, per slot):

    MOAD_s = (S_intra_digit - S_cross_digit) - (S_intra_s - S_cross_s)

(S = mean cosine over pairs of test samples with equal / different labels). The paper's claim
holds for (s, modality) when MOAD_s(s named always) < MOAD_s(baseline). Verdict (``verdict``):
every measurable pair holds -> agrees; at least half -> partly; fewer -> disagrees; none
measurable -> not comparable.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clipspace.analysis.plots import plot_grouped_bars
from clipspace.data.mad_schema import ATTRIBUTE_SLOTS
from clipspace.experiments.common import FULL, QUICK, ensure_mad, evaluate_run, finish, mad_recipe
from clipspace.experiments.registry import Experiment, Option, names_parser, number_parser, register
from clipspace.report import Section, Table
from clipspace.train import train

MODALITIES = ("image", "text")
#: quick scale (under 60 s on 2 cores): two slots an 80-step model learns (colour and size;
#: stroke, swelling and fracture need more steps; --slots adds them)
QUICK_SLOTS = ("colour", "scale")
QUICK_STEPS = 80
#: full scale: six runs (baseline + five slots) of 1,100 steps of 128 on all of MAD, 2,000 test
#: samples each (~2 min 20 s per run at ~8 steps/s on 2 cores; 1,800 steps would take ~25 min)
FULL_BUDGET = dataclasses.replace(FULL, steps=1100, eval_samples=2000)
PAPER = "Two Effects, One Trigger (Schrodi et al., ICLR 2025)"
CLAIM = ("Sec. 5, Fig. 6b: object bias comes from how often a concept is named in the captions. "
         "When an attribute is named in every caption, as often as the object, the object bias "
         "against that attribute drops: its MOAD is lower than in a model trained on captions "
         "that name it only sometimes.")


def slot_moad(result: Mapping[str, Any], slot: str) -> dict[str, float]:
    """``{"image": MOAD_slot, "text": MOAD_slot}`` from ``evaluate_run``'s ``moad`` entry (NaN
    where it is undefined)."""
    moad = result["moad"]
    out = {}
    for m in MODALITIES:
        value = moad[f"per_slot_{m}"].get(slot)
        out[m] = float("nan") if value is None else float(value)
    return out


def slot_deltas(baseline: Mapping[str, Mapping[str, float]],
                named: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """``{slot: {modality: MOAD_slot(slot named always) - MOAD_slot(baseline)}}``; ``baseline``
    and ``named`` map a slot to ``{modality: MOAD_slot}``."""
    return {s: {m: named[s][m] - baseline[s][m] for m in MODALITIES} for s in named}


def verdict(deltas: Mapping[str, Mapping[str, float]]) -> tuple[str, int, int]:
    """(verdict, pairs that hold, measurable pairs): a (slot, modality) pair holds when its delta
    is < 0; NaN deltas are not measurable. All hold -> agrees, >= half -> partly, fewer ->
    disagrees, none measurable -> not comparable."""
    values = [d for per in deltas.values() for d in per.values() if math.isfinite(d)]
    held = sum(d < 0 for d in values)
    if not values:
        return "not comparable", 0, 0
    if held == len(values):
        return "agrees", held, len(values)
    return ("partly" if 2 * held >= len(values) else "disagrees"), held, len(values)


def finding_text(deltas: Mapping[str, Mapping[str, float]], held: int, total: int,
                 steps: int) -> str:
    """What this run shows, from the deltas (the same numbers the verdict reads)."""
    parts = [f"{s}: image {d['image']:+.3f}, text {d['text']:+.3f}" for s, d in deltas.items()]
    lower = [f"{s} ({m})" for s, d in deltas.items() for m in MODALITIES if d[m] < 0]
    higher = [f"{s} ({m})" for s, d in deltas.items() for m in MODALITIES if d[m] >= 0]
    text = (f"Naming a slot in every caption changed its MOAD by {'; '.join(parts)} "
            f"(named always minus baseline, {steps} steps per run). MOAD dropped in {held} of "
            f"{total} measurable (slot, modality) pairs")
    text += f": {', '.join(lower)}" if lower else ""
    text += f"; it did not drop for {', '.join(higher)}." if higher else "."
    return text


def headline(deltas: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean MOAD change per modality over the slots where it is measurable (a modality with
    none is left out: report JSON holds no NaN)."""
    out = {}
    for m in MODALITIES:
        values = [d[m] for d in deltas.values() if math.isfinite(d[m])]
        if values:
            out[f"mean MOAD change ({m})"] = sum(values) / len(values)
    return out


parse_slots = names_parser("--slots", ATTRIBUTE_SLOTS)


parse_attrs = number_parser("--attrs", int, 1, len(ATTRIBUTE_SLOTS))


def _table(baseline: Mapping[str, Mapping[str, float]], named: Mapping[str, Mapping[str, float]],
           deltas: Mapping[str, Mapping[str, float]]) -> Table:
    header = ["slot", "image: baseline", "image: named always", "image: change",
              "text: baseline", "text: named always", "text: change"]
    rows = [[s] + [f"{v:+.3f}" for m in MODALITIES
                   for v in (baseline[s][m], named[s][m], deltas[s][m])] for s in named]
    return Table(header, rows, caption="MOAD of each slot (lower = less object bias against it)")


def _train_and_measure(name: str, overrides: dict[str, Any], ctx: dict[str, Any]) -> tuple[
        Path, dict[str, Any]]:
    """Train one run of the shared recipe and evaluate it (gap and MOAD, one embedding pass)."""
    cfg = mad_recipe("clip", ctx["mad"], ctx["out"] / "runs", ctx["budget"], ctx["seed"],
                     {"data.num_attrs": ctx["attrs"], "run.name": name, **overrides})
    run_dir = Path(train(cfg, overwrite=True))
    result = evaluate_run(run_dir, f"mad:{ctx['mad']}", suites=(),
                          max_samples=ctx["budget"].eval_samples, progress=False)
    print(f"[prevalence] {name}: MOAD image {result['moad']['moad_image']:+.3f}, "
          f"text {result['moad']['moad_text']:+.3f}, RMG {result['gap']['rmg']:.3f}")
    return run_dir, result


def reproduce_prevalence(
    out: str | Path = "reproduce-prevalence",
    quick: bool = False,
    workers: int = 2,
    seed: int = 0,
    slots: Sequence[str] | None = None,
    attrs: int = 2,
) -> dict[str, Any]:
    """A baseline run plus one run per slot of ``slots`` (default: all five; ``quick``:
    ``QUICK_SLOTS`` at ``QUICK_STEPS`` steps) with that slot named in every caption of ``attrs``
    attribute words; writes results.json, section.json, prevalence.png and report/."""
    out = Path(out)
    budget = dataclasses.replace(QUICK, steps=QUICK_STEPS) if quick else FULL_BUDGET
    slots = list(slots or (QUICK_SLOTS if quick else ATTRIBUTE_SLOTS))
    ctx = {"mad": ensure_mad(out / "mad", budget.digits, workers, seed), "out": out,
           "budget": budget, "seed": seed, "attrs": attrs}
    base_dir, base = _train_and_measure("baseline", {}, ctx)
    run_dirs, results = [base_dir], {"baseline": base}
    for s in slots:
        run_dir, results[s] = _train_and_measure(f"named-{s}", {"data.main_object": s}, ctx)
        run_dirs.append(run_dir)
    baseline = {s: slot_moad(base, s) for s in slots}
    named = {s: slot_moad(results[s], s) for s in slots}
    deltas = slot_deltas(baseline, named)
    v, held, total = verdict(deltas)
    fig = plot_grouped_bars(
        {f"{m} embedding": {"baseline": {s: baseline[s][m] for s in slots},
                            "named always": {s: named[s][m] for s in slots}} for m in MODALITIES},
        out / "prevalence.png", ylabel="MOAD of the slot")
    table = _table(baseline, named, deltas)
    sec = Section(
        title="Caption presence and object bias (Fig. 6b)", paper=PAPER, claim=CLAIM,
        finding=finding_text(deltas, held, total, budget.steps), verdict=v, tables=[table],
        figures=[str(fig)],
        headline=headline(deltas))
    summary = {"slots": slots, "num_attrs": attrs, "steps": budget.steps, "baseline": baseline,
               "named": named, "delta": deltas, "verdict": v, "held": held, "measurable": total,
               "runs": {k: {"moad": r["moad"], "gap": r["gap"]} for k, r in results.items()}}
    print(f"[prevalence] {held}/{total} pairs lower")
    return finish(out, "prevalence", summary, sec, run_dirs,
                  "Caption presence and object bias on MAD")


register(Experiment(
    name="prevalence", paper="Two Effects, One Trigger", run=reproduce_prevalence,
    help="Two Effects, One Trigger Fig. 6b: MOAD per slot when that slot is named in every caption",
    description="Trains a baseline CLIP on MAD and one CLIP per attribute slot with that slot "
    "named in every caption (data.main_object), then compares each slot's MOAD (image and text) "
    "with the baseline's and writes a report section.",
    options=(Option("--slots", "comma-separated attribute slots (default: all five; --quick: "
                    + ",".join(QUICK_SLOTS) + ")", None, parse_slots),
             Option("--attrs", "attribute words per caption (the named slot is one)", 2,
                    parse_attrs)),
))

__all__ = ["QUICK_SLOTS", "finding_text", "headline", "parse_attrs", "parse_slots",
           "reproduce_prevalence", "slot_deltas", "slot_moad", "verdict"]
