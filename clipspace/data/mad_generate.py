"""Generate a MAD directory: every MNIST digit in all 24 perturbation combinations, coloured.

docs/reference.md section 5. Per digit, one ``Morphology`` (upsample, binarise, skeleton, distance
maps) is shared by its 24 variants: 3 strokes x swelling x fracture give 12 high-resolution images
(perturbation order: stroke, then fracture, then swelling), each downscaled to a large (28x28) and a
small (21x21 pasted at offset 3-4 px) image. Every sample gets a colour drawn uniformly.

Determinism: digit ``i`` of the source uses ``SeedSequence(seed, spawn_key=(i,))``, so the output
depends on the seed only (not on ``workers``, chunking or ``limit``). The split is by source
digit, stratified by class. Output layout: see ``mad_schema``; written via ``atomic_dir``.
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import multiprocessing as mp
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from clipspace.data import mad_schema as S
from clipspace.data import morpho as M
from clipspace.data.mnist import load_mnist
from clipspace.data.tokenizer import train_tokenizer
from clipspace.errors import ClipspaceError
from clipspace.io import atomic_dir

# label tuples (stroke, swelling, fracture, scale) of the 24 variants, scale varying fastest
COMBOS: tuple[tuple[int, ...], ...] = tuple(
    itertools.product(*(range(len(S.VALUES[s])) for s in S.COMBO_SLOTS))
)
N_VARIANTS = len(COMBOS)
STROKE_AMOUNT = 0.7
CHUNK_DIGITS = 25
TOKENIZER_VOCAB = 1000
TOKENIZER_CONTEXT = 16
N_TOKENIZER_CAPTIONS = 20000

_STROKE = {v: i for i, v in enumerate(S.VALUES["stroke"])}
_COLOUR_CHANNELS: dict[str, tuple[int, ...]] = {
    "red": (0,), "green": (1,), "blue": (2,),
    "cyan": (1, 2), "magenta": (0, 2), "yellow": (0, 1),
}


def digit_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of source digit ``index`` (a SeedSequence child, independent of workers)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(index),)))


def digit_variants(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The 24 grey variants (24, 28, 28) uint8 of one 28x28 digit, in ``COMBOS`` order."""
    m = M.Morphology.from_image(image)
    strokes = {
        _STROKE["plain"]: m.binary,
        _STROKE["thickening"]: M.thicken(m, STROKE_AMOUNT),
        _STROKE["thinning"]: M.thin(m, STROKE_AMOUNT),
    }
    r_thick = float(m.stroke_radius(STROKE_AMOUNT))
    hires = np.empty((N_VARIANTS // 2, *m.binary.shape), dtype=np.float32)
    k = 0
    for stroke in range(len(S.VALUES["stroke"])):
        for swelling in (0, 1):
            for fracture in (0, 1):
                img = strokes[stroke]
                if fracture:
                    extra = r_thick if stroke == _STROKE["thickening"] else 0.0
                    img = M.fracture(m, img, rng, extra=extra)
                hires[k] = M.swell(m, img, rng) if swelling else img
                k += 1
    large = M.downscale(hires)
    offsets = rng.integers(3, 5, size=(len(hires), 2))  # 28 - 21 = 7: offset 3 or 4 per axis
    small = M.downscale_small(hires, offsets)
    return np.stack([large, small], axis=1).reshape(N_VARIANTS, 28, 28)


def colourise(gray: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(N, 28, 28) grey + colour labels -> (N, 28, 28, 3) uint8.

    gray: v in all channels; red/green/blue: v in that channel only; cyan/magenta/yellow: the two
    channels min(255, 2v) (= 255 on the stroke, binarised at half range; the anti-aliased edge
    kept), the third channel 0.
    """
    out = np.zeros((*gray.shape, 3), dtype=np.uint8)
    double = np.minimum(gray.astype(np.int32) * 2, 255).astype(np.uint8)
    for ci, name in enumerate(S.VALUES["colour"]):
        sel = colours == ci
        if not sel.any():
            continue
        if name == "gray":
            out[sel] = gray[sel, :, :, None]
            continue
        channels = _COLOUR_CHANNELS[name]
        src = gray[sel] if len(channels) == 1 else double[sel]
        for ch in channels:
            out[sel, :, :, ch] = src
    return out


def render_chunk(
    images: np.ndarray, sources: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Variants of a chunk of digits: (k*24, 28, 28, 3) uint8 images and (k*24,) colour labels."""
    n_col = len(S.VALUES["colour"])
    grays = np.empty((len(images) * N_VARIANTS, 28, 28), dtype=np.uint8)
    colours = np.empty(len(images) * N_VARIANTS, dtype=np.int64)
    for j, (img, src) in enumerate(zip(images, sources)):
        rng = digit_rng(seed, int(src))
        sl = slice(j * N_VARIANTS, (j + 1) * N_VARIANTS)
        grays[sl] = digit_variants(img, rng)
        colours[sl] = rng.integers(n_col, size=N_VARIANTS)
    return colourise(grays, colours), colours


def _render_task(args: tuple[int, np.ndarray, np.ndarray, int]):
    start, images, sources, seed = args
    rgb, colours = render_chunk(images, sources, seed)
    return start, rgb, colours


def split_digits(labels: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of ``round(test_fraction * n)`` test digits, spread evenly over the classes.

    Within each class the digits are randomly ranked; a digit's key is (rank + u) / n_class
    (u uniform), and the digits with the smallest keys go to test.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**32,)))
    keys = np.empty(len(labels), dtype=np.float64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keys[rng.permutation(idx)] = (np.arange(len(idx)) + rng.random(len(idx))) / len(idx)
    test = np.zeros(len(labels), dtype=bool)
    test[np.argsort(keys, kind="stable")[: int(round(test_fraction * len(labels)))]] = True
    return test


def select_limit(n: int, limit: int) -> np.ndarray:
    """Indices of ``limit`` digits evenly spaced through the source (all when limit <= 0)."""
    if limit <= 0 or limit >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def _all_words() -> list[str]:
    return [*S.DIGIT_WORDS, *(S.word(s, v) for s in S.ATTRIBUTE_SLOTS for v in S.VALUES[s])]


@functools.lru_cache(maxsize=2)
def tokenizer_corpus(seed: int = 0, n: int = N_TOKENIZER_CAPTIONS) -> tuple[str, ...]:
    """Every caption word alone plus ``n`` random captions (digit + k shuffled attributes)."""
    rng = random.Random(seed)
    texts = _all_words()
    for _ in range(n):
        k = rng.randint(0, len(S.ATTRIBUTE_SLOTS))
        slots = rng.sample(S.ATTRIBUTE_SLOTS, k)
        words = [S.word("digit", rng.randrange(10))]
        words += [S.word(s, rng.randrange(len(S.VALUES[s]))) for s in slots]
        rng.shuffle(words)
        texts.append("-".join(words))
    return tuple(texts)


def train_mad_tokenizer(directory: Path) -> Path:
    """Train the MAD byte-level BPE on the caption corpus and save ``directory/tokenizer.json``.

    The corpus (and so the tokenizer) is the same for every MAD directory: it covers all words.
    """
    tok = train_tokenizer(list(tokenizer_corpus()), TOKENIZER_VOCAB, TOKENIZER_CONTEXT)
    path = directory / "tokenizer.json"
    tok.save(path)
    return path


def _write_metadata(
    path: Path, digits: np.ndarray, sources: np.ndarray, test: np.ndarray, colours: np.ndarray
) -> None:
    """One row per image: index, split, source (MNIST index), integer labels (schema order)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(S.METADATA_COLUMNS)
        index = 0
        for digit, src, is_test in zip(digits, sources, test):
            split = "test" if is_test else "train"
            for combo in COMBOS:
                row = {"index": index, "split": split, "source": int(src), "digit": int(digit)}
                row.update(zip(S.COMBO_SLOTS, combo))
                row["colour"] = int(colours[index])
                w.writerow([row[c] for c in S.METADATA_COLUMNS])
                index += 1


def _cpu_seconds() -> float:
    """CPU time of this process and its reaped children (user + system)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _iter_results(tasks: list, workers: int):
    if workers <= 1:
        for task in tasks:
            yield _render_task(task)
        return
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with mp.get_context(method).Pool(workers) as pool:
        yield from pool.imap(_render_task, tasks)


def generate_mad(
    out: str | Path,
    mnist: str | Path = "embedded",
    workers: int = 1,
    seed: int = 0,
    overwrite: bool = False,
    limit: int = 0,
    test_fraction: float = 0.2,
    progress: bool = True,
) -> Path:
    """Write a MAD directory at ``out`` (layout in ``mad_schema``) and return its path.

    ``mnist``: "embedded" or a directory of IDX files; ``workers``: processes over chunks of
    ``CHUNK_DIGITS`` digits; ``limit``: use that many digits evenly spaced through the source
    (0 = all); ``test_fraction``: share of source digits held out. Raises ``FileExistsError``
    if ``out`` exists and not ``overwrite``; ``DataError`` for a bad MNIST source.
    """

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite=True / --overwrite)")
    if not 0.0 <= test_fraction < 1.0:
        raise ClipspaceError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if workers < 1:
        raise ClipspaceError(f"workers must be >= 1, got {workers}")
    images, labels = load_mnist(mnist)
    sources = select_limit(len(images), int(limit))
    images, labels = images[sources], labels[sources]
    test = split_digits(labels, test_fraction, seed)
    n_img = len(images) * N_VARIANTS
    tasks = [
        (s, images[s : s + CHUNK_DIGITS], sources[s : s + CHUNK_DIGITS], int(seed))
        for s in range(0, len(images), CHUNK_DIGITS)
    ]
    from tqdm import tqdm

    t0, c0 = time.perf_counter(), _cpu_seconds()
    with atomic_dir(out, overwrite=overwrite) as tmp:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700
        arr = np.lib.format.open_memmap(
            tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n_img, 28, 28, 3)
        )
        colours = np.empty(n_img, dtype=np.int64)
        bar = tqdm(total=n_img, unit="img", desc="MAD", disable=not progress, file=sys.stderr)
        for start, rgb, cols in _iter_results(tasks, workers):
            sl = slice(start * N_VARIANTS, start * N_VARIANTS + len(rgb))
            arr[sl] = rgb
            colours[sl] = cols
            bar.update(len(rgb))
        bar.close()
        arr.flush()
        del arr
        gen_seconds = time.perf_counter() - t0
        cpu_seconds = _cpu_seconds() - c0  # workers are joined by now, so their time counts
        _write_metadata(tmp / "metadata.csv", labels, sources, test, colours)
        tokenizer = train_mad_tokenizer(tmp).name
        manifest: dict[str, Any] = {
            "format": S.FORMAT,
            "version": S.VERSION,
            "source": "embedded" if str(mnist) == "embedded" else str(Path(mnist).resolve()),
            "seed": int(seed),
            "limit": int(limit),
            "test_fraction": float(test_fraction),
            "counts": {
                "train": int((~test).sum()) * N_VARIANTS,
                "test": int(test.sum()) * N_VARIANTS,
                "total": n_img,
                "digits_train": int((~test).sum()),
                "digits_test": int(test.sum()),
            },
            "variants_per_digit": N_VARIANTS,
            "image_shape": [28, 28, 3],
            "combo_slots": list(S.COMBO_SLOTS),
            "vocabulary": {
                "digit": list(S.DIGIT_WORDS), **{s: list(S.VALUES[s]) for s in S.VALUES}
            },
            "words": S.WORDS,
            "tokenizer": tokenizer,
            "generator": {
                "workers": int(workers),
                "seconds": round(gen_seconds, 3),
                "images_per_s": round(n_img / max(gen_seconds, 1e-9), 1),
                "images_per_s_per_worker": round(n_img / max(gen_seconds, 1e-9) / workers, 1),
                "cpu_seconds": round(cpu_seconds, 3),
                "images_per_cpu_s": round(n_img / max(cpu_seconds, 1e-9), 1),
                "cpu_count": os.cpu_count(),
            },
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out
