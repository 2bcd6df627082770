"""Tiny MAD directories and label sets.

``generate_tiny_mad`` is the shared tiny MAD (the real generator on ``TINY_MAD_LIMIT`` embedded
MNIST digits; the ``tiny_mad`` session fixture). ``write_mad`` writes the MAD layout by hand
(random pixels, no tokenizer) for the reader tests that must not depend on the generator.
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np

from clipspace.data import mad_schema as S

TINY_MAD_LIMIT = 30  # source digits in the shared tiny MAD
TINY_MAD_SEED = 0
VARIANTS = 24  # images per source digit (all combinations of S.COMBO_SLOTS)
# the test split at generate_mad's default test_fraction (0.2; tests/data/test_mad_generate.py
# checks that default on this directory): round(0.2 * 30) = 6 held-out digits x 24 = 144 images
TINY_MAD_TEST_IMAGES = round(0.2 * TINY_MAD_LIMIT) * VARIANTS


def generate_tiny_mad(root: Path, limit: int = TINY_MAD_LIMIT) -> Path:
    """The real generator on ``limit`` embedded MNIST digits (seed 0, default split)."""
    from clipspace.data.mad_generate import generate_mad

    return generate_mad(root, limit=limit, seed=TINY_MAD_SEED, progress=False)


def write_mad(root: Path, n_digits: int = 4, test_digits: int = 1, seed: int = 0) -> Path:
    """A MAD-layout directory: each source digit in all 24 combos, random images and colours."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    combos = list(itertools.product(*(range(len(S.VALUES[s])) for s in S.COMBO_SLOTS)))
    rows = []
    for src in range(n_digits):
        digit = int(rng.integers(10))
        split = "test" if src >= n_digits - test_digits else "train"
        for combo in combos:
            colour = int(rng.integers(len(S.VALUES["colour"])))
            rows.append([len(rows), split, src, digit, *combo, colour])
    images = rng.integers(0, 256, size=(len(rows), 28, 28, 3), dtype=np.uint8)
    np.save(root / "images.npy", images)
    with open(root / "metadata.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(S.METADATA_COLUMNS)
        w.writerows(rows)
    manifest = {"format": S.FORMAT, "version": S.VERSION, "source": "fixture", "seed": seed,
                "counts": {"images": len(rows)}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def random_labels(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` independent random MAD label rows, as label key -> (n,) integer array."""
    rng = np.random.default_rng(seed)
    out = {"digit": rng.integers(10, size=n)}
    for s in S.ATTRIBUTE_SLOTS:
        out[s] = rng.integers(len(S.VALUES[s]), size=n)
    return out


def mad_corpus(n: int = 400) -> list[str]:
    """``n`` MAD captions of all 5 attributes, random labels (seeded): a tokenizer corpus."""
    from clipspace.data.captions import CaptionPlan

    rng = np.random.default_rng(0)
    labels = {"digit": rng.integers(10, size=n), "stroke": rng.integers(3, size=n),
              "swelling": rng.integers(2, size=n), "fracture": rng.integers(2, size=n),
              "scale": rng.integers(2, size=n), "colour": rng.integers(7, size=n)}
    plan = CaptionPlan.draw(n, num_attrs=5, seed=1)
    return [plan.text(i, labels) for i in range(n)]
