"""MAD generation speed: images/s per core (1 and 2 workers) vs the naive one-variant-per-call rate.

The naive pipeline is the Morpho-MNIST way of making one variant: upsample, binarise and compute
the skeleton with the public ``skimage.morphology.medial_axis`` (which rebuilds its lookup tables
per call), then recompute the morphology before each further perturbation (swelling, fracture),
warp the whole image with ``skimage.transform.warp`` and downscale with ``pyramid_reduce``.

Usage: python benchmarks/mad.py [--limit 200] [--workers 1,2] [--naive 48] [--full]
``--full`` also times all 5,000 embedded digits x 24 with 2 workers (target <= 90 s).
Rates are wall-clock and CPU-time based; on a shared machine trust the CPU-time figures and the
machine-independent speed-up ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import disk
from skimage.morphology import medial_axis as sk_medial_axis
from skimage.transform import pyramid_expand, pyramid_reduce, rescale, warp

from clipspace.data import mad_generate as G
from clipspace.data import mad_schema as S
from clipspace.data import morpho as M
from clipspace.data.mnist import load_mnist


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _morph(binary: np.ndarray) -> M.Morphology:
    skel, dist = sk_medial_axis(binary, return_distance=True)
    return M.Morphology(binary, skel, dist)


def naive_variant(
    image: np.ndarray, combo: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    """One variant, recomputing the morphology for each step (Morpho-MNIST style)."""
    stroke, swelling, fracture, scale = combo
    binary = pyramid_expand(image / 255.0, upscale=4, order=3) >= 0.5
    m = _morph(binary)
    name = S.VALUES["stroke"][stroke]
    if name != "plain":
        r = m.stroke_radius(0.7)
        op = ndi.binary_dilation if name == "thickening" else ndi.binary_erosion
        binary = op(binary, disk(r)) if r > 0 else binary
    img = binary.astype(np.float64)
    if fracture:
        m = _morph(binary)
        img = M.fracture(m, binary, rng).astype(np.float64)
    if swelling:
        m = _morph(img >= 0.5)
        pts = np.argwhere(m.skeleton)
        c = pts[rng.integers(len(pts))][::-1].astype(float)  # (x, y) for warp
        big_r = 7 * math.sqrt(m.mean_thickness) / 2 * 4

        def inverse_map(xy: np.ndarray) -> np.ndarray:
            d = xy - c
            dist = np.hypot(d[:, 0], d[:, 1])[:, None]
            w = np.where(dist < big_r, (dist / big_r) ** 2, 1.0)
            return c + w * d

        img = warp(img, inverse_map, order=1)
    down = pyramid_reduce(img, downscale=4, order=3)
    if scale:
        small = rescale(down, 0.75, order=3)
        canvas = np.zeros((28, 28))
        canvas[3 : 3 + small.shape[0], 3 : 3 + small.shape[1]] = small
        down = canvas
    return M.to_uint8(down)


def bench_naive(images: np.ndarray, n: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    t0, c0 = time.perf_counter(), _cpu()
    for k in range(n):
        naive_variant(images[k // 24], G.COMBOS[k % 24], rng)
    return n / (time.perf_counter() - t0), n / (_cpu() - c0)


def bench_generate(limit: int, workers: int, mnist: str = "embedded") -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = G.generate_mad(Path(tmp) / "mad", mnist=mnist, workers=workers, limit=limit,
                             progress=False)
        gen = json.loads((out / "manifest.json").read_text())["generator"]
        n = json.loads((out / "manifest.json").read_text())["counts"]["total"]
    return {"images": n, "seconds": gen["seconds"], "wall_per_core": gen["images_per_s_per_worker"],
            "cpu_rate": gen["images_per_cpu_s"]}


def bench_single_core(images: np.ndarray) -> tuple[float, float]:
    """In-process render of the digits (no I/O): wall and CPU images/s on one core."""
    t0, c0 = time.perf_counter(), _cpu()
    G.render_chunk(images, np.arange(len(images)), 0)
    n = len(images) * G.N_VARIANTS
    return n / (time.perf_counter() - t0), n / (_cpu() - c0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=200, help="digits per generator run")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--naive", type=int, default=48, help="naive variants to time")
    ap.add_argument("--full", action="store_true", help="also time 5,000 digits x 24, 2 workers")
    args = ap.parse_args()
    images, _ = load_mnist("embedded")
    subset = images[G.select_limit(len(images), args.limit)]

    print(f"{'pipeline':<34}{'images':>8}{'wall img/s/core':>17}{'cpu img/s':>11}")
    wall1, cpu1 = bench_single_core(subset)
    print(f"{'shared morphology, in-process':<34}{len(subset) * 24:>8}{wall1:>17.0f}{cpu1:>11.0f}")
    print(f"  single-worker time per image: {1e3 / wall1:.3f} ms wall, {1e3 / cpu1:.3f} ms CPU")
    for w in (int(x) for x in args.workers.split(",")):
        r = bench_generate(args.limit, w)
        print(f"{f'generate_mad, {w} worker(s)':<34}{r['images']:>8}{r['wall_per_core']:>17.0f}"
              f"{r['cpu_rate']:>11.0f}   ({r['seconds']:.1f} s)")
    nw, nc = bench_naive(subset, args.naive)
    print(f"{'naive one variant per call':<34}{args.naive:>8}{nw:>17.1f}{nc:>11.1f}")
    print(f"speed-up (CPU-time rates): {cpu1 / nc:.1f}x; (wall rates): {wall1 / nw:.1f}x")
    print(f"target >= 850 img/s per core: {'met' if cpu1 >= 850 else 'NOT met'} (CPU-time rate)")
    if args.full:
        r = bench_generate(0, 2)
        print(f"full embedded set, 2 workers: {r['images']} images in {r['seconds']:.1f} s "
              f"(target <= 90 s: {'met' if r['seconds'] <= 90 else 'NOT met'})")


if __name__ == "__main__":
    main()
