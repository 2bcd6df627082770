"""``clipspace compare``: every model on every benchmark, with its modality gap and object bias,
and how the gap relates to performance across models (Two Effects, One Trigger, section 4.1:
rank correlation of the gap with downstream performance over many pretrained models).

Each (model, data) pair is embedded once: the suites the data supports, the cosine gap (L2M,
RMG), the gap in the model's own geometry and, where the data has object and attribute labels
(MAD), MOAD. Across models, for every performance metric and every gap metric: Spearman's rho
and Kendall's tau with their p-values (scipy), on the models that have both numbers.
"""

from __future__ import annotations

import html
import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scipy.stats import kendalltau, spearmanr

from clipspace.analysis.gap import gap_stats, geometric_gap
from clipspace.analysis.run import moad_both
from clipspace.data import mad_schema as S
from clipspace.errors import ClipspaceError
from clipspace.eval import embed, evaluate
from clipspace.experiments.common import load_model_and_data
from clipspace.io import atomic_write_text
from clipspace.tree import flatten

#: performance metrics (dotted keys of evaluate's JSON) correlated with the gap, when present
PERFORMANCE_KEYS: tuple[str, ...] = (
    "zeroshot.mean_top1", "zeroshot.class.top1", "retrieval.i2t_r1", "retrieval.t2i_r1",
    "linear_probe.digit.accuracy", "linear_probe.class.accuracy",
)
GAP_KEYS: tuple[str, ...] = ("gap.l2m", "gap.rmg", "geometric.geodesic_rmg", "moad.moad")


def _suites_for(data: str) -> list[str]:
    kind = data.partition(":")[0]
    return {"mad": ["zeroshot", "retrieval", "linear_probe"],
            "imagefolder": ["zeroshot", "linear_probe"]}.get(kind, ["retrieval"])


def score_pair(model_spec: str, data: str, max_samples: int = 0, progress: bool = True
               ) -> dict[str, Any]:
    """Suites, gap (cosine and in the model's geometry) and MOAD of one model on one dataset."""
    model, dataset, tok = load_model_and_data(model_spec, data)
    emb = embed(model, dataset, tok, max_samples=max_samples, progress=progress)
    res = evaluate(model, data, _suites_for(data), tokenizer=tok, embeddings=emb,
                   progress=progress, probe_keys=("digit",))
    res["gap"] = gap_stats(emb.image, emb.text)
    res["geometric"] = geometric_gap(emb.image, emb.text, model.geometry,
                                     model.curv().detach().float())
    if all(k in emb.labels for k in S.LABEL_KEYS):
        res["moad"] = moad_both(emb.image, emb.text, emb.labels, "digit")
    return res


def _finite(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def correlations(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Spearman and Kendall correlation of every gap metric with every performance metric
    across models (pairs where at least 3 models have both; p-values two-sided)."""
    flat = {name: flatten(res) for name, res in results.items()}
    out = []
    for perf in PERFORMANCE_KEYS:
        for gap in GAP_KEYS:
            pairs = [(f[gap], f[perf]) for f in flat.values() if gap in f and perf in f]
            xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
            if len(pairs) < 3 or not _finite(xs + ys):
                continue
            with warnings.catch_warnings():  # a constant column: NaN, reported as null
                warnings.simplefilter("ignore")
                rho, p_rho = spearmanr(xs, ys)
                tau, p_tau = kendalltau(xs, ys)
            out.append({"gap": gap, "performance": perf, "n_models": len(pairs),
                        "spearman": _num(rho), "spearman_p": _num(p_rho),
                        "kendall": _num(tau), "kendall_p": _num(p_tau)})
    return out


def _num(x: Any) -> float | None:
    """A float, or None (JSON null) where scipy returns NaN (e.g. a constant column)."""
    x = float(x)
    return x if math.isfinite(x) else None


def table(results: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Rows = (model, data) pairs, columns = the metrics any pair has."""
    keys = [k for k in (*PERFORMANCE_KEYS, *GAP_KEYS)
            if any(k in flatten(r) for r in results.values())]
    rows = []
    for name, res in results.items():
        f = flatten(res)
        rows.append([name, *(f"{f[k]:.4f}" if isinstance(f.get(k), (int, float)) else "-"
                             for k in keys)])
    return ["model @ data", *keys], rows


def write_tables(out: Path, results: dict[str, dict[str, Any]], corr: list[dict]) -> Path:
    """compare.json, compare.md and compare.html (the report section) under ``out``."""
    head, rows = table(results)
    md = ["# Models compared", "", "| " + " | ".join(head) + " |",
          "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows), "",
          "## Gap against performance across models", "",
          "| gap | performance | models | Spearman (p) | Kendall (p) |", "|---|---|---:|---|---|"]
    for c in corr:
        md.append(f"| {c['gap']} | {c['performance']} | {c['n_models']} | "
                  f"{_fmt(c['spearman'])} ({_fmt(c['spearman_p'])}) | "
                  f"{_fmt(c['kendall'])} ({_fmt(c['kendall_p'])}) |")
    if not corr:
        md.append("| - | - | - | fewer than 3 models with both numbers | - |")
    text = "\n".join(md) + "\n"
    atomic_write_text(out / "compare.md", text)
    atomic_write_text(out / "compare.html", "<!doctype html><meta charset='utf-8'><pre>"
                      + html.escape(text) + "</pre>\n")
    atomic_write_text(out / "compare.json", json.dumps(
        {"results": results, "correlations": corr}, indent=2, allow_nan=False) + "\n")
    return out / "compare.md"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def compare(models: Sequence[str], datas: Sequence[str], out: str | Path,
            max_samples: int = 0, progress: bool = True) -> dict[str, Any]:
    """Score every model on every dataset; write compare.json/.md/.html into ``out``."""
    if not models or not datas:
        raise ClipspaceError("compare needs at least one MODEL and one --data SPEC")
    results = {f"{m} @ {d}": score_pair(m, d, max_samples, progress)
               for m in models for d in datas}
    corr = []
    for d in datas:  # correlations across models, per dataset
        corr += [{**c, "data": d} for c in correlations(
            {k: v for k, v in results.items() if k.endswith(f" @ {d}")})]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = write_tables(out, results, corr)
    print(path.read_text())
    return {"results": results, "correlations": corr}


__all__ = ["compare", "correlations", "score_pair", "table"]
