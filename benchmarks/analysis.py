"""Benchmark of the analysis / evaluation metrics (issue 5).

1. RMG and MOAD in closed form, O(N D), at N = 1e4 .. 1e6 (D = 512), against the brute-force
   pairwise method (O(N^2 D), blockwise so memory stays bounded). Brute force runs only up to
   ``--brute-max`` items; beyond that its time is extrapolated as t(N0) (N / N0)^2 and marked "~".
2. Retrieval Recall@1/5/10 both directions at N x N (default 100k; ``--retrieval-n`` smaller on a
   busy machine, time extrapolated as (N / n)^2) in a fresh process: time and peak RSS increase.
3. HierarCaps protocol time on 1000 images x 4000 candidates (random embeddings).

Run: python benchmarks/analysis.py [--sizes 10000,100000,1000000] [--retrieval-n 20000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from functools import partial

import numpy as np
import torch


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def brute_rmg(img: torch.Tensor, txt: torch.Tensor, block: int = 2048) -> float:
    """RMG from all pairwise cosines (blockwise)."""
    a, b = _unit(img), _unit(txt)
    n = len(a)
    m = ((1 - (a * b).sum(1)) / 2).double().mean()
    d = []
    for x in (a, b):
        tot = 0.0
        for s in range(0, n, block):
            c = x[s : s + block] @ x.T
            idx = torch.arange(s, min(s + block, n))
            c[idx - s, idx] = 0.0
            tot += float(((1 - c) / 2).double().sum()) - 0.5 * len(idx)  # remove diagonal (d=0.5)
        d.append(tot / (n * (n - 1)))
    return float(m / (m + (d[0] + d[1]) / 2))


def brute_moad(x: torch.Tensor, obj: np.ndarray, attr: np.ndarray, block: int = 2048) -> float:
    a = _unit(x)
    n = len(a)
    o, t = torch.from_numpy(obj), torch.from_numpy(attr)
    sums = {"oi": 0.0, "oc": 0.0, "ai": 0.0, "ac": 0.0}
    cnt = dict.fromkeys(sums, 0)
    for s in range(0, n, block):
        c = (a[s : s + block] @ a.T).double()
        eye = torch.zeros_like(c, dtype=torch.bool)
        r = torch.arange(s, min(s + block, n))
        eye[r - s, r] = True
        for name, lab in (("o", o), ("a", t)):
            same = (lab[s : s + block, None] == lab[None, :]) & ~eye
            cross = (lab[s : s + block, None] != lab[None, :])
            sums[name + "i"] += float(c[same].sum())
            cnt[name + "i"] += int(same.sum())
            sums[name + "c"] += float(c[cross].sum())
            cnt[name + "c"] += int(cross.sum())
    s_ = {k: sums[k] / cnt[k] for k in sums}
    return (s_["oi"] - s_["oc"]) - (s_["ai"] - s_["ac"])


def bench_gap(sizes: list[int], dim: int, brute_max: int) -> list[dict]:
    from clipspace.analysis.gap import gap_stats
    from clipspace.analysis.moad import moad

    rows = []
    base_brute: dict[str, tuple[int, float]] = {}
    for n in sizes:
        g = torch.Generator().manual_seed(0)
        img = torch.randn(n, dim, generator=g)
        txt = torch.randn(n, dim, generator=g)
        txt.add_(img).add_(0.5)  # in place: no third N x D temporary
        rng = np.random.default_rng(0)
        digit, colour = rng.integers(0, 10, n), rng.integers(0, 7, n)
        t0 = time.perf_counter()
        fast = gap_stats(img, txt)["rmg"]
        t_rmg = time.perf_counter() - t0
        t0 = time.perf_counter()
        fm = moad(img, digit, {"colour": colour})["moad"]
        t_moad = time.perf_counter() - t0
        row = {"n": n, "rmg_s": t_rmg, "moad_s": t_moad}
        for name, fn, fval, tf in (
            ("rmg", partial(brute_rmg, img, txt), fast, t_rmg),
            ("moad", partial(brute_moad, img, digit, colour), fm, t_moad),
        ):
            if n <= brute_max:
                t0 = time.perf_counter()
                bval = fn()
                tb = time.perf_counter() - t0
                base_brute[name] = (n, tb)
                row[f"{name}_err"] = abs(bval - fval)
                row[f"{name}_brute_s"] = f"{tb:.2f}"
            elif name in base_brute:
                n0, t0b = base_brute[name]
                tb = t0b * (n / n0) ** 2
                row[f"{name}_brute_s"] = f"~{tb:.0f}"
            else:
                tb = float("nan")
            row[f"{name}_speedup"] = tb / tf
        rows.append(row)
    return rows


def _vm(field: str) -> float:
    """A /proc/self/status memory field in kB (VmHWM = peak resident set of this process)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _retrieval_child(n: int, dim: int, chunk: int, q: mp.Queue) -> None:
    from clipspace.eval.retrieval import recall_at_k

    torch.manual_seed(0)
    img = torch.randn(n, dim)
    txt = torch.randn(n, dim)
    txt.add_(img)
    base = _vm("VmRSS")
    t0 = time.perf_counter()
    r = recall_at_k(img, txt, chunk=chunk)
    dt = time.perf_counter() - t0
    peak = _vm("VmHWM")
    q.put({"n": n, "time_s": dt, "peak_extra_mb": (peak - base) / 1024,
           "embeddings_mb": 2 * n * dim * 4 / 2**20, "i2t_r1": r["i2t_r1"]})


def bench_retrieval(n: int, dim: int, chunk: int) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_retrieval_child, args=(n, dim, chunk, q))
    p.start()
    out = q.get()
    p.join()
    out["full_matrix_mb"] = n * n * 4 / 2**20
    return out


def bench_hierarcaps(n_img: int, dim: int) -> dict:
    from clipspace.eval.hierarchy import hierarcaps_metrics
    from clipspace.eval.retrieval import cosine_scores

    g = torch.Generator().manual_seed(0)
    img = torch.randn(n_img, dim, generator=g)
    cand = torch.randn(4 * n_img, dim, generator=g)
    texts = [f"caption {i}" for i in range(4 * n_img)]
    rho = cand.norm(dim=1)
    gt = [texts[4 * i : 4 * i + 4] for i in range(n_img)]
    t0 = time.perf_counter()
    res = hierarcaps_metrics(img, cand, texts, rho, gt, cosine_scores)
    return {"images": n_img, "candidates": 4 * n_img, "time_s": time.perf_counter() - t0,
            "precision": res["precision"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--brute-max", type=int, default=20000)
    ap.add_argument("--retrieval-n", type=int, default=100000)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--hier-n", type=int, default=1000)
    args = ap.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    print("\n| N | RMG closed form (s) | RMG brute (s) | speed-up | MOAD closed form (s) "
          "| MOAD brute (s) | speed-up | max abs diff vs brute (RMG / MOAD) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in bench_gap(sizes, args.dim, args.brute_max):
        errs = (f"{r['rmg_err']:.1e} / {r['moad_err']:.1e}" if "rmg_err" in r else "-")
        print(f"| {r['n']:,} | {r['rmg_s']:.3f} | {r.get('rmg_brute_s', '-')} | "
              f"{r['rmg_speedup']:,.0f}x | {r['moad_s']:.3f} | {r.get('moad_brute_s', '-')} | "
              f"{r['moad_speedup']:,.0f}x | {errs} |", flush=True)
    rr = bench_retrieval(args.retrieval_n, args.dim, args.chunk)
    extra = (100000 / rr["n"]) ** 2
    print("\n| retrieval N | time (s) | time at 100k (s, extrapolated N^2) "
          "| peak RSS increase (MB) | embeddings (MB) | a full N x N matrix would be (MB) |")
    print("|---|---|---|---|---|---|")
    print(f"| {rr['n']:,} | {rr['time_s']:.1f} | {rr['time_s'] * extra:.0f} | "
          f"{rr['peak_extra_mb']:.0f} | {rr['embeddings_mb']:.0f} | {rr['full_matrix_mb']:,.0f} |")
    h = bench_hierarcaps(args.hier_n, args.dim)
    print(f"\nHierarCaps protocol: {h['images']} images x {h['candidates']} candidates, "
          f"50 thresholds: {h['time_s']:.2f} s")


if __name__ == "__main__":
    main()
