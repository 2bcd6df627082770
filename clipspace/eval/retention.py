"""Knowledge retention of an adapted model: the pretrained model's scores on a held-out benchmark
before and after it moved into another geometry (``clipspace finetune geometry --eval-data``).

Both models are evaluated by ``eval.evaluate`` on the same data and suites (one embedding pass
each); every numeric result both share is compared: before, after and after - before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clipspace.eval.evaluate import evaluate
from clipspace.tree import flatten

#: the suites a retention report runs by default: what a pretrained model is known for, and the
#: hierarchy the new geometry is for
RETENTION_SUITES = ("zeroshot", "retrieval", "hierarchy")
#: result keys printed first (the rest stay in the JSON)
HEADLINE = ("zeroshot", "retrieval.mean_r1", "retrieval.i2t_r1", "retrieval.t2i_r1",
            "hierarchy.precision", "hierarchy.recall", "hierarchy.tau_d")


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{key: {"before", "after", "delta"}} over the numeric leaves both results hold."""
    a, b = flatten(before), flatten(after)
    return {k: {"before": float(a[k]), "after": float(b[k]), "delta": float(b[k]) - float(a[k])}
            for k in a if k in b and _is_number(a[k]) and _is_number(b[k])}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def retention(base: Any, adapted: Any, data: str, tokenizers: tuple[Any, Any],
              suites: Sequence[str] = RETENTION_SUITES, max_samples: int = 0,
              progress: bool = True) -> dict[str, Any]:
    """Evaluate ``base`` and ``adapted`` (each with its tokenizer) on ``data``; returns
    ``{"data", "suites", "before", "after", "compare"}``."""
    before = evaluate(base, data, suites, tokenizer=tokenizers[0], max_samples=max_samples,
                      progress=progress)
    after = evaluate(adapted, data, suites, tokenizer=tokenizers[1], max_samples=max_samples,
                     progress=progress)
    return {"data": data, "suites": list(suites), "before": before, "after": after,
            "compare": compare(before, after)}


def headline_rows(report: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    """(key, before, after, delta) of the headline keys present, in ``HEADLINE`` order."""
    rows = []
    for prefix in HEADLINE:
        for key, v in report["compare"].items():
            if (key == prefix or key.startswith(prefix + ".")) and key.endswith(
                    ("top1", "r1", "precision", "recall", "tau_d")):
                rows.append((key, v["before"], v["after"], v["delta"]))
    return rows


def format_retention(report: dict[str, Any]) -> str:
    """The headline rows as a plain-text table."""
    rows = headline_rows(report)
    width = max([len(r[0]) for r in rows] + [6])
    lines = [f"{'metric':<{width}}  {'before':>8}  {'after':>8}  {'delta':>8}"]
    lines += [f"{k:<{width}}  {b:8.4f}  {a:8.4f}  {d:+8.4f}" for k, b, a, d in rows]
    return "\n".join(lines)


__all__ = ["HEADLINE", "RETENTION_SUITES", "compare", "format_retention", "headline_rows",
           "retention"]
