"""Benchmark: forward+backward time and peak extra memory of every logit / loss on CPU.

    python benchmarks/losses.py [--sizes 256,1024,4096] [--dim 512] [--repeats 3]

Time: the fastest of ``repeats`` forward+backward passes (after one warm-up), run round-robin
over the losses so that changing machine load hits all of them alike; 1 torch thread default;
the ratio column divides by cosine InfoNCE at the same B (machine-independent-ish).
Memory: peak resident-set growth during one forward+backward, measured by resetting the
kernel's high-water mark (``/proc/self/clear_refs`` = 5) and reading ``VmHWM - VmRSS`` before
the pass. During that pass glibc's mmap threshold is set to 64 KiB (``mallopt``) so every tensor
of 64 KiB or more is its own mmap returned to the OS on free: the number is then the peak of
live tensor memory the pass allocated (incl. the input gradients, 2 B D floats), shown in MiB
and in units of one B x B float32 matrix. It is an upper bound: free heap pages are trimmed
before the pass (``malloc_trim``) and small allocations touching them again count too.
Timing passes run with the threshold at 32 MiB (glibc's usual dynamic maximum).
Linux/glibc only for memory (otherwise "n/a").
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable

import torch

from clipspace.geometry import get_geometry
from clipspace.losses import (
    angle_loss,
    centroid_loss,
    entailment_loss,
    infonce,
    pairwise_logits,
    siglip,
)

Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SCALE = 10.0


def _contrastive(kind: str, geo: str, loss: str = "infonce") -> Step:
    g = get_geometry(geo)
    if loss == "siglip":
        return lambda x, y: siglip(SCALE * pairwise_logits(kind, x, y, g, 1.0), -10.0)
    return lambda x, y: infonce(SCALE * pairwise_logits(kind, x, y, g, 1.0))


def cases() -> dict[str, tuple[str, Step]]:
    """name -> (geometry whose points to feed, step)."""
    lor, euc = get_geometry("lorentz"), get_geometry("euclidean")
    return {
        "infonce cosine (sphere)": ("sphere", _contrastive("cosine", "sphere")),
        "infonce dot (euclidean)": ("euclidean", _contrastive("dot", "euclidean")),
        "infonce -d (euclidean)": ("euclidean", _contrastive("neg_dist", "euclidean")),
        "infonce -d^2 (euclidean)": ("euclidean", _contrastive("neg_sqdist", "euclidean")),
        "infonce -geodesic (sphere)": ("sphere", _contrastive("neg_dist", "sphere")),
        "infonce -d_L (lorentz)": ("lorentz", _contrastive("neg_dist", "lorentz")),
        "infonce <,>_L (lorentz)": ("lorentz", _contrastive("inner", "lorentz")),
        "siglip cosine (sphere)": ("sphere", _contrastive("cosine", "sphere", "siglip")),
        "siglip -d_L (lorentz)": ("lorentz", _contrastive("neg_dist", "lorentz", "siglip")),
        "entailment (lorentz)": ("lorentz", lambda x, y: entailment_loss(y, x, lor, 1.0)),
        "entailment (euclidean)": ("euclidean", lambda x, y: entailment_loss(y, x, euc, 1.0)),
        "ATMG angle (lorentz)": ("lorentz", lambda x, y: angle_loss(x, y, lor, 1.0, SCALE)),
        "ATMG angle (euclidean)": ("euclidean", lambda x, y: angle_loss(x, y, euc, 1.0, SCALE)),
        "centroid (lorentz)": ("lorentz", lambda x, y: centroid_loss(x, y, lor, 1.0)),
    }


def _mem_status() -> tuple[int, int] | None:
    try:
        with open("/proc/self/status") as f:
            s = f.read()
        hwm = int(re.search(r"VmHWM:\s+(\d+)", s).group(1)) * 1024  # type: ignore[union-attr]
        rss = int(re.search(r"VmRSS:\s+(\d+)", s).group(1)) * 1024  # type: ignore[union-attr]
        return hwm, rss
    except (OSError, AttributeError):
        return None


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def _mallopt(threshold: int) -> bool:
    """Set glibc's mmap threshold (and a trim threshold of 2x); False where unavailable."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, threshold) == 1
        ok = ok and libc.mallopt(M_TRIM_THRESHOLD, 2 * threshold) == 1
        libc.malloc_trim(0)  # hand free heap pages back so that reuse shows up as growth
        return ok
    except (OSError, AttributeError):
        return False


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _inputs(geo: str, b: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    if geo == "sphere":
        x, y = x / x.norm(dim=-1, keepdim=True), y / y.norm(dim=-1, keepdim=True)
    else:  # tangent vectors of norm ~1 (MERU-like scale), mapped to points
        x, y = (get_geometry(geo).exp_map0(v / d**0.5, 1.0) for v in (x, y))
    return x.requires_grad_(True), y.requires_grad_(True)


def _one(step: Step, x: torch.Tensor, y: torch.Tensor) -> None:
    x.grad = y.grad = None
    loss = step(x, y)
    loss.backward()
    if not torch.isfinite(loss):
        raise RuntimeError("non-finite loss in benchmark")


def measure_memory(step: Step, x: torch.Tensor, y: torch.Tensor) -> float | None:
    """Peak extra resident bytes of one forward+backward (None where unsupported)."""
    _one(step, x, y)  # warm-up
    x.grad = y.grad = None
    if not _mallopt(64 * 1024):
        return None
    try:
        if not _reset_hwm() or (st := _mem_status()) is None:
            return None
        _one(step, x, y)
        st1 = _mem_status()
        return float(st1[0] - st[1]) if st1 else None
    finally:
        _mallopt(32 * 1024 * 1024)


def time_once(step: Step, x: torch.Tensor, y: torch.Tensor) -> float:
    t0 = time.perf_counter()
    _one(step, x, y)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="256,1024,4096", help="comma-separated batch sizes B")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", default="", help="substring filter on loss names")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    allc = cases()
    names = [n for n in allc if args.only.lower() in n.lower()]
    base = "infonce cosine (sphere)"
    if base not in names:
        names.insert(0, base)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, D={args.dim}, "
          f"repeats={args.repeats} (min over round-robin), memory = peak RSS growth of one fwd+bwd")
    print("| loss | B | fwd+bwd ms | ratio to cosine InfoNCE | peak extra MiB | in BxB fp32 |")
    print("|---|---:|---:|---:|---:|---:|")
    for b in sizes:
        inputs = {geo: _inputs(geo, b, args.dim, seed=b) for geo in ("sphere", "euclidean",
                                                                      "lorentz")}
        peaks = {n: measure_memory(allc[n][1], *inputs[allc[n][0]]) for n in names}
        best = {n: float("inf") for n in names}
        for _ in range(args.repeats):  # round-robin so that load changes hit every loss alike
            for n in names:
                best[n] = min(best[n], time_once(allc[n][1], *inputs[allc[n][0]]))
        for n in names:
            t, peak = best[n], peaks[n]
            mib = f"{peak / 2**20:.1f}" if peak is not None else "n/a"
            units = f"{peak / (4 * b * b):.2f}" if peak is not None else "n/a"
            print(f"| {n} | {b} | {1e3 * t:.1f} | {t / best[base]:.2f} | {mib} | {units} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
