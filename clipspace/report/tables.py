"""The report's tables: the headline numbers first, the config differences, every metric last.
Cells are formatted text (``fmt``: 4 significant digits, "-" when a run lacks the key)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from clipspace.report.runs import RunSummary
from clipspace.report.section import Section, Table

#: the numbers the papers argue about first: column label -> dotted key in eval/analysis.json
HEADLINE_KEYS: dict[str, str] = {
    "zero-shot digit": "zeroshot.digit.top1",
    "I->T R@1": "retrieval.i2t_r1",
    "T->I R@1": "retrieval.t2i_r1",
    "tau_d": "hierarchy.tau_d",
    "hier P": "hierarchy.precision",
    "hier R": "hierarchy.recall",
    "RMG": "gap.rmg",
    "MOAD": "moad.moad",
    "logit entropy / log N": "dynamics.entropy_rel",
}


def fmt(value: Any) -> str:
    """A cell: floats to 4 significant digits ("nan" kept visible), None as "-"."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def headline_table(runs: Sequence[RunSummary]) -> Table:
    """One row per run, one column per ``HEADLINE_KEYS`` entry that some run has."""
    keys = {label: key for label, key in HEADLINE_KEYS.items()
            if any(key in r.numeric_results() for r in runs)}
    rows = [[r.name, *(fmt(r.numeric_results().get(k)) for k in keys.values())] for r in runs]
    return Table(["run", *keys], rows, "Headline numbers of every run (test split)")


def section_headline_table(sections: Sequence[Section]) -> Table:
    """One row per (section, headline label): the numbers each experiment argues about."""
    rows = [[s.title, label, fmt(float(v)) if isinstance(v, (int, float)) else fmt(v),
             s.verdict] for s in sections for label, v in s.headline.items()]
    return Table(["experiment", "quantity", "value", "verdict"], rows,
                 "Headline numbers of every experiment")


def metric_table(runs: Sequence[RunSummary]) -> Table:
    """Rows = every numeric metric (union over runs, first-seen order), columns = runs."""
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.numeric_results() if k not in keys]
    rows = [[key, *(fmt(run.numeric_results().get(key)) for run in runs)] for key in keys]
    return Table(["metric", *(r.name for r in runs)], rows, "Every metric of every run")


def config_table(runs: Sequence[RunSummary]) -> Table:
    """Config keys whose values differ between runs (all keys for a single run)."""
    rows = []
    for key in sorted({k for r in runs for k in r.config}):
        values = [r.config.get(key) for r in runs]
        if len(runs) == 1 or len({json.dumps(v, sort_keys=True) for v in values}) > 1:
            rows.append([key, *(fmt(v) for v in values)])
    caption = "Config" if len(runs) == 1 else "Config keys that differ between the runs"
    return Table(["config", *(r.name for r in runs)], rows, caption)


__all__ = ["HEADLINE_KEYS", "config_table", "fmt", "headline_table", "metric_table",
           "section_headline_table"]
