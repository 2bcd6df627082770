"""Recall@K cost per geometry and logit kind against the cosine, and peak memory.

Times ``eval.retrieval.recall_at_k`` (R@1/5/10 both ways, no groups) on random N x N data:
the cosine (``score_fn=None``) and, for every geometry and logit kind, the model's ranking score
(``Objective.rank_scores``) and optionally the exact ``similarity``.
Every case runs in a fresh process that times it and the cosine alternately (``--repeat``
times each, the fastest run counts), so each ratio comes from adjacent runs on the same load;
``peak MB`` is the peak resident memory of the case's call above what the process held before
it (VmHWM after a reset: an upper bound of the call's extra memory).

    python benchmarks/retrieval.py                       # 20k x 20k, D = 512, every case
    python benchmarks/retrieval.py --n 100000 --cases lorentz:neg_dist --repeat 1
    python benchmarks/retrieval.py --score exact,rank    # also the exact similarity
    git show HEAD:clipspace/eval/retrieval.py > /tmp/old.py
    python benchmarks/retrieval.py --impl /tmp/old.py    # another recall_at_k, same cases

Data: images x ~ N(0, I / D), texts x + 4 N(0, I / D), sphere points normalised, curvature 1
(the recall columns differ between logits: on this data the squared distance is dominated by
|y|^2). The filtered text -> image pass depends on the score distribution, so random data is a
model of real embeddings, not a substitute.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = ("cosine", "dot", "inner", "neg_dist", "neg_sqdist")
DEFAULT_CASES = ["cosine"] + [
    f"{g}:{k}" for g in ("sphere", "euclidean", "lorentz") for k in KINDS
] + ["euclidean:angle", "lorentz:angle"]


def _vm(field: str) -> float:
    """A /proc/self/status field in MB (VmRSS now, VmHWM peak)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024
    return float("nan")


def _recall_fn(impl: str):
    if not impl:
        from clipspace.eval.retrieval import recall_at_k

        return recall_at_k
    spec = importlib.util.spec_from_file_location("recall_impl", impl)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.recall_at_k


def _data(n: int, dim: int, geometry: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    img = torch.randn(n, dim, generator=g).div_(dim**0.5)
    txt = torch.randn(n, dim, generator=g).mul_(4.0 / dim**0.5).add_(img)
    if geometry == "sphere":
        img = torch.nn.functional.normalize(img, dim=-1)
        txt = torch.nn.functional.normalize(txt, dim=-1)
    return img, txt


def _reset_peak() -> float:
    """Reset VmHWM to the current resident set (Linux clear_refs 5); return that RSS in MB."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    return _vm("VmRSS")


def _child(case: str, score: str, args: argparse.Namespace, q: mp.Queue) -> None:
    """Time ``case`` and the cosine alternately, ``args.repeat`` times each, in this process."""
    from clipspace.losses import Objective

    torch.set_num_threads(args.threads)
    recall = _recall_fn(args.impl)
    geometry, _, kind = case.partition(":")
    img, txt = _data(args.n, args.dim, geometry if kind else "sphere")
    score_fn = None
    if kind:
        obj = (Objective(geometry, contrastive="angle") if kind == "angle"
               else Objective(geometry, logit=kind))
        fn = obj.rank_scores if score == "rank" else obj.similarity
        c = torch.tensor(1.0)

        def score_fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return fn(a, b, c)

    cos_img, cos_txt = _data(args.n, args.dim, "sphere") if kind else (img, txt)
    for x, y, f in ((img, txt, score_fn), (cos_img, cos_txt, None)):  # warm-up
        recall(x[:256], y[:256], score_fn=f, chunk=args.chunk)
    times: dict[str, list[float]] = {"case": [], "cosine": []}
    peak, res = 0.0, {}
    for _ in range(args.repeat):
        for name, x, y, f in (("case", img, txt, score_fn), ("cosine", cos_img, cos_txt, None)):
            if name == "cosine" and not (kind and args.pair):
                continue
            base = _reset_peak()
            t0 = time.perf_counter()
            r = recall(x, y, score_fn=f, chunk=args.chunk)
            times[name].append(time.perf_counter() - t0)
            if name == "case":
                peak, res = max(peak, _vm("VmHWM") - base), r
    cos_ms = 1e3 * min(times["cosine" if kind and args.pair else "case"]) if (
        times["cosine"] or not kind) else float("nan")
    q.put({"case": case, "score": score if kind else "-", "ms": 1e3 * min(times["case"]),
           "cos_ms": cos_ms, "peak_mb": peak, "i2t_r1": res["i2t_r1"],
           "t2i_r10": res["t2i_r10"], "load": os.getloadavg()[0]})


def run_case(case: str, score: str, args: argparse.Namespace) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(case, score, args, q))
    p.start()
    out = q.get()
    p.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20000, help="images = texts (default 20000)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=4096, help="recall_at_k's chunk")
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES),
                    help="comma-separated: cosine | GEOMETRY:KIND (KIND a logit kind or angle)")
    ap.add_argument("--score", default="rank", help="rank, exact or both (comma-separated)")
    ap.add_argument("--impl", default="", help="a file with another recall_at_k to time")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--repeat", type=int, default=2, help="runs per case (the fastest counts)")
    ap.add_argument("--no-pair", dest="pair", action="store_false",
                    help="do not time a cosine run beside every case (for long runs)")
    args = ap.parse_args()
    scores = ["exact", "rank"] if args.score == "both" else args.score.split(",")
    print(f"# recall_at_k, N = {args.n}, D = {args.dim}, chunk = {args.chunk}, "
          f"{args.threads} threads, impl = {args.impl or 'clipspace'}, load "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    print("| case | score | ms | cosine ms (same process) | vs cosine | peak MB | i2t R@1 "
          "| t2i R@10 | load |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for case in (c for c in args.cases.split(",") if c):
        for score in scores if ":" in case else ["-"]:
            r = run_case(case, score, args)
            print(f"| {r['case']} | {r['score']} | {r['ms']:.0f} | {r['cos_ms']:.0f} | "
                  f"{r['ms'] / r['cos_ms']:.2f}x | {r['peak_mb']:.0f} | {r['i2t_r1']:.4f} | "
                  f"{r['t2i_r10']:.4f} | {r['load']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
