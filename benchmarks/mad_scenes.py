"""MAD-scenes speed: scenes/s per core (generation, reading with crops) vs MAD's images/s.

Run with one thread per process (``OMP_NUM_THREADS=1``). Makes a small MAD directory with the
real generator (``--limit`` digits; its own images per CPU-second is the reference rate), then
times ``generate_mad_scenes`` end to end (I/O included) and the in-process pipeline (layout,
painting, captions; no I/O), and ``MadScenes`` + ``collate_scenes`` (28x28 crops).

Usage: OMP_NUM_THREADS=1 python benchmarks/mad_scenes.py [--limit 100] [--scenes 20000]
Rates are CPU-time based (the per-core figures) and wall-clock; on a shared machine trust CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from clipspace.data import mad_scenes_generate as G
from clipspace.data.mad import read_metadata
from clipspace.data.mad_generate import generate_mad
from clipspace.data.mad_scenes import MadScenes, collate_scenes


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def bench_in_process(mad: Path, n: int) -> tuple[float, float]:
    """Layout + paint + captions of ``n`` train scenes in chunks, no I/O: (wall, cpu) scenes/s."""
    meta = read_metadata(mad)
    images = np.load(mad / "images.npy", mmap_mode="r")
    pool = meta["index"][meta["split"] == "train"]
    labels = G._split_labels(meta, len(images))
    cfg = G.SceneSettings()
    t0, c0 = time.perf_counter(), _cpu()
    for c, lo in enumerate(range(0, n, G.CHUNK_SCENES)):
        rng = np.random.default_rng([0, c])
        layout = G.layout_chunk(rng, min(G.CHUNK_SCENES, n - lo), pool, cfg)
        G.paint_chunk(images, layout, cfg.canvas)
        G.caption_chunk(rng, layout, labels, cfg.num_attrs)
    return n / (time.perf_counter() - t0), n / (_cpu() - c0)


def bench_generate(mad: Path, out: Path, n: int) -> tuple[float, float]:
    """``generate_mad_scenes`` (80% train, 20% test), files written: (wall, cpu) scenes/s."""
    t0, c0 = time.perf_counter(), _cpu()
    G.generate_mad_scenes(mad, out, num_train=n - n // 5, num_test=n // 5, progress=False)
    return n / (time.perf_counter() - t0), n / (_cpu() - c0)


def bench_read(root: Path, n: int, batch: int = 256) -> tuple[float, float]:
    """``MadScenes(crop_size=28)`` items + ``collate_scenes``: (wall, cpu) scenes/s."""
    ds = MadScenes(root, split="train", crop_size=28)
    n = min(n, len(ds))
    t0, c0 = time.perf_counter(), _cpu()
    for lo in range(0, n, batch):
        collate_scenes([ds[i] for i in range(lo, min(lo + batch, n))])
    return n / (time.perf_counter() - t0), n / (_cpu() - c0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=100, help="MAD source digits (x24 images)")
    ap.add_argument("--scenes", type=int, default=20000, help="scenes per timing")
    ap.add_argument("--read", type=int, default=4000, help="scenes read back")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mad = generate_mad(Path(tmp) / "mad", limit=args.limit, progress=False)
        mad_rate = json.loads((mad / "manifest.json").read_text())["generator"]["images_per_cpu_s"]
        print(f"{'pipeline':<44}{'scenes':>8}{'wall /s':>10}{'cpu /s':>10}{'vs MAD':>8}")
        rows = [
            ("in-process (layout, paint, captions)", args.scenes,
             bench_in_process(mad, args.scenes)),
            ("generate_mad_scenes (files written)", args.scenes,
             bench_generate(mad, Path(tmp) / "scenes", args.scenes)),
            ("MadScenes + collate (28x28 crops)", args.read,
             bench_read(Path(tmp) / "scenes", args.read)),
        ]
        for name, n, (wall, cpu) in rows:
            print(f"{name:<44}{n:>8}{wall:>10.0f}{cpu:>10.0f}{cpu / mad_rate:>7.1f}x")
        print(f"MAD generation (reference, {args.limit * 24} images): {mad_rate:.0f} images "
              "per CPU-second")


if __name__ == "__main__":
    main()
