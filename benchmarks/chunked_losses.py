"""Benchmark: chunked vs unchunked contrastive losses (issue 14, ``loss.chunk_size``).

For every geometry / loss (clip: sphere cosine InfoNCE; euclip: Euclidean -d^2 InfoNCE; meru:
Lorentz -d_L InfoNCE; atmg: Lorentz angle logits; siglip: sphere cosine SigLIP) and each batch
size B (D = 512 by default), one forward + backward of ``Objective(..., chunk_size=c)`` on random
points, in a fresh process each (spawn): wall time (best of ``--repeats``) and, in a second fresh
process, peak memory increase (peak RSS minus the RSS after the inputs were made, so torch's own
footprint is not counted; run with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed buffers leave
the RSS and it follows the live tensors, which would slow down the timed run), chunked and
unchunked, and the ratios. The unchunked run is skipped where the B x B float32 logits alone
would exceed ``--max-gib`` (default 8 GiB).

Run: OMP_NUM_THREADS=1 python benchmarks/chunked_losses.py [--sizes 1024,4096,16384]
     [--dim 512] [--chunk 512] [--repeats 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time
from typing import Any

import torch

from clipspace.losses import Objective

#: name -> (geometry, Objective keyword arguments)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "clip": ("sphere", {"contrastive": "infonce", "logit": "cosine"}),
    "euclip": ("euclidean", {"contrastive": "infonce", "logit": "neg_sqdist"}),
    "meru": ("lorentz", {"contrastive": "infonce", "logit": "neg_dist"}),
    "atmg": ("lorentz", {"contrastive": "angle"}),
    "siglip": ("sphere", {"contrastive": "siglip", "logit": "cosine"}),
}


def _rss_mib() -> float:
    """Current resident set size (MiB) from /proc/self/status."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _one(case: str, b: int, dim: int, chunk: int, repeats: int, queue: Any) -> None:
    """In a fresh process: best-of-``repeats`` forward + backward time, peak RSS increase."""
    torch.set_num_threads(1)
    geo, kw = CASES[case]
    gen = torch.Generator().manual_seed(0)
    scale = dim**-0.5  # |x| ~ 1: the points of a trained model, no underflowing exp()
    img = (scale * torch.randn(b, dim, generator=gen)).requires_grad_(True)
    txt = (scale * torch.randn(b, dim, generator=gen)).requires_grad_(True)
    curv = torch.tensor(1.0, requires_grad=True)
    obj = Objective(geo, **kw, chunk_size=chunk)
    obj(img[:8], txt[:8], curv)["loss"].backward()  # warm-up: lazy initialisation off the clock
    base = _rss_mib()
    best = float("inf")
    for _ in range(repeats):
        img.grad = txt.grad = curv.grad = None
        start = time.perf_counter()
        loss = obj(img, txt, curv)["loss"]
        loss.backward()
        best = min(best, time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    queue.put((best, max(peak - base, 0.0), float(loss.detach())))


def _spawned(case: str, b: int, dim: int, chunk: int, repeats: int,
             env: dict[str, str]) -> tuple[float, float, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_one, args=(case, b, dim, chunk, repeats, queue))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        proc.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    result = queue.get()
    proc.join()
    return result


def measure(case: str, b: int, dim: int, chunk: int, repeats: int) -> tuple[float, float, float]:
    """(seconds, peak MiB increase, loss) of one configuration: time and memory each in its own
    spawned process."""
    seconds, _, loss = _spawned(case, b, dim, chunk, repeats, {})
    _, mib, _ = _spawned(case, b, dim, chunk, 1, {"MALLOC_MMAP_THRESHOLD_": "65536"})
    return seconds, mib, loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1024,4096,16384")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--max-gib", type=float, default=8.0,
                        help="skip the unchunked loss where B*B float32 exceed this")
    args = parser.parse_args()
    print(f"D={args.dim}  chunk={args.chunk}  threads=1  best of {args.repeats}  "
          "(time s, peak RSS increase MiB)")
    print(f"{'case':8s} {'B':>6s} {'unchunked s':>11s} {'MiB':>8s} {'chunked s':>10s} "
          f"{'MiB':>8s} {'time x':>7s} {'mem x':>7s} {'rel dL':>8s}")
    for b in (int(x) for x in args.sizes.split(",")):
        for case in args.cases.split(","):
            t1, m1, l1 = measure(case, b, args.dim, args.chunk, args.repeats)
            if b * b * 4 > args.max_gib * 2**30:
                print(f"{case:8s} {b:6d} {'skipped':>11s} {'':>8s} {t1:10.3f} {m1:8.1f}")
                continue
            t0, m0, l0 = measure(case, b, args.dim, 0, args.repeats)
            rel = abs(l1 - l0) / abs(l0)
            print(f"{case:8s} {b:6d} {t0:11.3f} {m0:8.1f} {t1:10.3f} {m1:8.1f} "
                  f"{t1 / t0:7.2f} {m1 / max(m0, 1e-9):7.3f} {rel:8.1e}", flush=True)


if __name__ == "__main__":
    main()
