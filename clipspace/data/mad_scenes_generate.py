"""Generate MAD scenes: canvases holding 1..4 MAD digits with exact, non-overlapping boxes.

docs/data.md, section "MAD scenes". Train scenes draw their digits from the MAD train split, test
scenes from the MAD test split. Per scene: the object count is uniform in ``1..max_objects``;
each object is a MAD image (uniform over the split) resized from 28x28 to a side drawn uniformly
in ``min_side..max_side`` (triangle filter, see ``resize_matrix``) and pasted on a black canvas
at a position drawn uniformly among the positions where it overlaps no earlier box (boxes may
touch). An object with no free position is retried at ``min_side``, then dropped (the first
object always fits). Its box is the pasted square, ``[x0, x1) x [y0, y1)`` in pixels.

Captions: an object's caption is its MAD caption (digit + ``num_attrs`` attribute words,
``captions.CaptionPlan``); the scene caption is the box captions in box order joined by
``SCENE_JOIN`` (e.g. ``"3-thinning and red-7"``).

Determinism: chunk ``c`` of split ``s`` (``CHUNK_SCENES`` scenes) uses
``SeedSequence(seed, spawn_key=(s, c))``, so the output depends on the seed and the counts only;
the same arguments give byte-identical files (no timings in the manifest). Layout: see
``mad_scenes``; written via ``atomic_dir``.
"""

from __future__ import annotations

import copy
import csv
import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from clipspace.data import mad_schema as S
from clipspace.data.captions import CaptionPlan
from clipspace.data.mad import load_image_array, read_manifest, read_metadata
from clipspace.data.mad_generate import TOKENIZER_CONTEXT, TOKENIZER_VOCAB, tokenizer_corpus
from clipspace.data.tokenizer import Tokenizer, get_tokenizer, train_tokenizer
from clipspace.errors import DataError
from clipspace.io import atomic_dir

FORMAT = "clipspace-mad-scenes"
VERSION = 1
SCENE_JOIN = " and "
MAX_OBJECTS = 4
CHUNK_SCENES = 512
SPLIT_KEYS = {"train": 0, "test": 1}
BOX_COLUMNS: tuple[str, ...] = (
    "scene", "box", "x0", "y0", "x1", "y1", "source", *S.LABEL_KEYS, "caption",
)
SCENE_COLUMNS: tuple[str, ...] = ("index", "split", "num_boxes", "caption")


@dataclass(frozen=True)
class SceneSettings:
    """Generator settings (validated by ``check_settings``)."""

    canvas: int = 56
    min_side: int = 14
    max_side: int = 28
    max_objects: int = MAX_OBJECTS
    num_attrs: int = 2


def check_settings(cfg: SceneSettings, num_train: int, num_test: int) -> None:
    """DataError naming the option unless every setting is in range."""
    if not 1 <= cfg.max_objects <= MAX_OBJECTS:
        raise DataError(f"max_objects (--max-objects) must be in 1..{MAX_OBJECTS}, "
                        f"got {cfg.max_objects}")
    if not 0 <= cfg.num_attrs <= len(S.ATTRIBUTE_SLOTS):
        raise DataError(f"num_attrs (--num-attrs) must be in 0..{len(S.ATTRIBUTE_SLOTS)}, "
                        f"got {cfg.num_attrs}")
    if not 1 <= cfg.min_side <= cfg.max_side:
        raise DataError(f"digit sides (--min-side, --max-side) need 1 <= min <= max, "
                        f"got {cfg.min_side}..{cfg.max_side}")
    if cfg.canvas < cfg.max_side:
        raise DataError(f"canvas (--canvas) {cfg.canvas} is smaller than the largest digit "
                        f"side (--max-side) {cfg.max_side}")
    if num_train < 0 or num_test < 0 or num_train + num_test == 0:
        raise DataError(f"scene counts (--num-train, --num-test) must be >= 0 and not both 0, "
                        f"got {num_train}, {num_test}")


def resize_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) float32 resampling matrix of a triangle (bilinear) filter, as PIL's BILINEAR.

    Output pixel i is centred at ``(i + 0.5) * f`` in input coordinates (``f = src / dst``); input
    pixel j gets weight ``max(0, 1 - |j + 0.5 - centre| / max(f, 1))``; rows sum to 1. ``dst ==
    src`` gives the identity.
    """
    f = src / dst
    support = max(f, 1.0)
    centre = (np.arange(dst) + 0.5) * f
    w = np.maximum(0.0, 1.0 - np.abs(np.arange(src)[None, :] + 0.5 - centre[:, None]) / support)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def resize_digits(images: np.ndarray, side: int) -> np.ndarray:
    """(K, H, H, 3) uint8 -> (K, side, side, 3) uint8 with ``resize_matrix`` on both axes,
    rounded to nearest."""
    r = resize_matrix(images.shape[1], side)
    x = images.astype(np.float32).transpose(0, 3, 1, 2)  # (K, 3, H, H)
    out = np.matmul(np.matmul(r, x), r.T)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def place_object(
    boxes: np.ndarray, placed: np.ndarray, side: np.ndarray, u: np.ndarray, canvas: int,
    min_side: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform free position for one new square per scene, vectorised over scenes.

    ``boxes`` (B, J, 4) earlier boxes, ``placed`` (B, J) which of them exist, ``side`` (B,) with
    ``min_side <= side <= canvas``, ``u`` (B,) uniforms in [0, 1). A position (x, y) is free when
    the square fits the canvas and, for every earlier box, lies entirely left/right of it or
    entirely above/below it. The ``floor(u * n_free)``-th free position in row-major order is
    taken (row first, by the row counts; then the column). Returns (x0, y0) (B, 2) and ``ok``
    (B,) (False: no free position).
    """
    pos = np.arange(canvas - min_side + 1, dtype=np.int64)  # no square fits beyond
    s = side[:, None]
    fit = pos[None, :] + s <= canvas  # (B, P)
    free = fit[:, None, :] & fit[:, :, None]  # (B, y, x)
    for j in range(boxes.shape[1]):
        x0, y0, x1, y1 = (boxes[:, j, k][:, None] for k in range(4))
        sep_x = (pos[None, :] + s <= x0) | (pos[None, :] >= x1)
        sep_y = (pos[None, :] + s <= y0) | (pos[None, :] >= y1) | ~placed[:, j, None]
        free &= sep_x[:, None, :] | sep_y[:, :, None]
    rows = free.sum(axis=2)  # (B, y)
    count = rows.sum(axis=1)
    target = np.floor(u * count).astype(np.int64)  # the target-th free position, row-major
    cum = np.cumsum(rows, axis=1)
    y = np.argmax(cum > target[:, None], axis=1)
    before = np.where(y > 0, cum[np.arange(len(y)), y - 1], 0)
    in_row = free[np.arange(len(y)), y]  # (B, x)
    x = np.argmax(np.cumsum(in_row, axis=1) > (target - before)[:, None], axis=1)
    return np.stack([x, y], axis=1), count > 0


def layout_chunk(
    rng: np.random.Generator, n: int, pool: np.ndarray, cfg: SceneSettings
) -> dict[str, np.ndarray]:
    """Draw the objects of ``n`` scenes: ``boxes`` (n, J, 4) int64, ``placed`` (n, J) bool,
    ``source`` (n, J) global MAD indices drawn from ``pool``; J = ``max_objects``."""
    j_max = cfg.max_objects
    count = rng.integers(1, j_max + 1, size=n)
    sides = rng.integers(cfg.min_side, cfg.max_side + 1, size=(n, j_max))
    source = pool[rng.integers(len(pool), size=(n, j_max))]
    u = rng.random((n, j_max))
    boxes = np.zeros((n, j_max, 4), dtype=np.int64)
    placed = np.zeros((n, j_max), dtype=bool)
    for j in range(j_max):
        act = np.flatnonzero(j < count)  # scenes that want a j-th object
        args = (boxes[act, :j], placed[act, :j])
        xy, ok = place_object(*args, sides[act, j], u[act, j], cfg.canvas, cfg.min_side)
        retry = np.flatnonzero(~ok)
        if len(retry):  # no room at the drawn side: try the smallest side, else drop
            sides[act[retry], j] = cfg.min_side
            xy[retry], ok[retry] = place_object(
                args[0][retry], args[1][retry], sides[act[retry], j], u[act[retry], j],
                cfg.canvas, cfg.min_side)
        placed[act, j] = ok
        boxes[act, j, :2] = xy
        boxes[act, j, 2:] = xy + sides[act, j, None]
    return {"boxes": boxes, "placed": placed, "source": source}


def paint_chunk(images: np.ndarray, layout: dict[str, np.ndarray], canvas: int) -> np.ndarray:
    """(n, canvas, canvas, 3) uint8 scenes: black, each placed object's resized digit pasted
    into its box; objects are resized in one batch per side."""
    boxes, placed, source = layout["boxes"], layout["placed"], layout["source"]
    out = np.zeros((len(boxes), canvas, canvas, 3), dtype=np.uint8)
    scene, slot = np.nonzero(placed)
    b = boxes[scene, slot]
    sides = b[:, 2] - b[:, 0]
    for side in np.unique(sides):
        sel = np.flatnonzero(sides == side)
        order = np.argsort(source[scene[sel], slot[sel]], kind="stable")  # sorted memmap reads
        sel = sel[order]
        digits = resize_digits(np.asarray(images[source[scene[sel], slot[sel]]]), int(side))
        for d, n, x0, y0 in zip(digits, scene[sel].tolist(), b[sel, 0].tolist(),
                                b[sel, 1].tolist()):
            out[n, y0 : y0 + side, x0 : x0 + side] = d  # boxes do not overlap
    return out


def caption_chunk(
    rng: np.random.Generator, layout: dict[str, np.ndarray], labels: dict[str, np.ndarray],
    num_attrs: int,
) -> tuple[list[str], list[str]]:
    """Box captions (placed objects in scene-major order) and scene captions.

    ``labels``: label key -> (N_mad,) array indexed by global MAD index.
    """
    scene, slot = np.nonzero(layout["placed"])
    src = layout["source"][scene, slot]
    box_labels = {k: labels[k][src] for k in S.LABEL_KEYS}
    plan = CaptionPlan.draw(len(src), num_attrs, seed=int(rng.integers(2**62)))
    box_caps = [plan.text(i, box_labels) for i in range(len(src))]
    bounds = np.searchsorted(scene, np.arange(len(layout["placed"]) + 1))
    scene_caps = [SCENE_JOIN.join(box_caps[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    return box_caps, scene_caps


def _mad_inputs(mad: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], np.ndarray]:
    """MAD manifest, metadata columns and the memory-mapped images (DataError naming the file)."""
    manifest = read_manifest(mad)
    meta = read_metadata(mad)
    path = mad / "images.npy"
    images = load_image_array(path)
    if images.shape[1] != images.shape[2]:
        raise DataError(f"{path}: expected uint8 (N, H, H, 3), got {images.dtype} "
                        f"{tuple(images.shape)}")
    if len(meta["index"]) and (meta["index"].min() < 0 or meta["index"].max() >= len(images)):
        raise DataError(f"{mad / 'metadata.csv'}: index outside 0..{len(images) - 1}")
    return manifest, meta, images


def _split_labels(meta: dict[str, np.ndarray], n_images: int) -> dict[str, np.ndarray]:
    """Label arrays indexed by global MAD image index."""
    out = {}
    for k in S.LABEL_KEYS:
        arr = np.zeros(n_images, dtype=np.int64)
        arr[meta["index"]] = meta[k]
        out[k] = arr
    return out


def _write_tables(
    tmp: Path, box_rows: list[list[Any]], scene_rows: list[list[Any]]
) -> None:
    """``boxes.csv`` and ``scenes.csv`` (columns BOX_COLUMNS / SCENE_COLUMNS)."""
    for name, header, rows in (("boxes.csv", BOX_COLUMNS, box_rows),
                               ("scenes.csv", SCENE_COLUMNS, scene_rows)):
        with open(tmp / name, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)


def _chunk_rows(
    first: int, split: str, layout: dict[str, np.ndarray], labels: dict[str, np.ndarray],
    box_caps: list[str], scene_caps: list[str],
) -> tuple[list[list[Any]], list[list[Any]]]:
    """Table rows of one chunk whose first scene has global index ``first``."""
    scene, slot = np.nonzero(layout["placed"])
    src = layout["source"][scene, slot]
    b = layout["boxes"][scene, slot]
    lab = np.stack([labels[k][src] for k in S.LABEL_KEYS], axis=1)
    box_index = (np.cumsum(layout["placed"], axis=1) - 1)[scene, slot]  # dropped: no gap
    cols = np.concatenate([(scene + first)[:, None], box_index[:, None], b, src[:, None], lab],
                          axis=1).tolist()
    box_rows = [[*c, cap] for c, cap in zip(cols, box_caps)]
    counts = layout["placed"].sum(axis=1).tolist()
    scene_rows = [[first + i, split, counts[i], cap] for i, cap in enumerate(scene_caps)]
    return box_rows, scene_rows


def _corpus_tokenizer() -> Tokenizer:
    """MAD's tokenizer trained on its fixed caption corpus (a fresh copy of one cached run)."""
    return copy.deepcopy(_trained_corpus_tokenizer())


@functools.lru_cache(maxsize=1)
def _trained_corpus_tokenizer() -> Tokenizer:
    return train_tokenizer(list(tokenizer_corpus()), TOKENIZER_VOCAB, TOKENIZER_CONTEXT)


def write_scene_tokenizer(mad: Path, out: Path, captions: list[str]) -> int:
    """``out/tokenizer.json``: MAD's own tokenizer (the MAD directory's, else the same one trained
    on MAD's fixed caption corpus; scene captions use MAD's words and "and") with the context
    length raised to the longest caption (SOT and EOT included), rounded up to a multiple of 8.
    Returns that context length."""
    tok = get_tokenizer(mad) if (mad / "tokenizer.json").is_file() else _corpus_tokenizer()
    longest = max(len(tok.backend.encode(c, add_special_tokens=False).ids) for c in captions) + 2
    context = max(tok.context_length, 8 * -(-longest // 8))
    tok.context_length = context
    tok.save(out / "tokenizer.json")
    return context


def generate_mad_scenes(
    mad: str | Path,
    out: str | Path,
    seed: int = 0,
    num_train: int = 10000,
    num_test: int = 2000,
    canvas: int = 56,
    min_side: int = 14,
    max_side: int = 28,
    max_objects: int = MAX_OBJECTS,
    num_attrs: int = 2,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a MAD-scenes directory at ``out`` from the MAD directory ``mad``; return ``out``.

    Raises DataError (naming the file or option) for a bad MAD directory or setting and
    FileExistsError if ``out`` exists and not ``overwrite``. Nothing is written before the
    inputs are checked; the output appears only when complete.
    """
    mad, out = Path(mad), Path(out)
    cfg = SceneSettings(int(canvas), int(min_side), int(max_side), int(max_objects),
                        int(num_attrs))
    check_settings(cfg, int(num_train), int(num_test))
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite=True / --overwrite)")
    if out.resolve() == mad.resolve():
        raise DataError(f"--out {out} is the MAD directory itself")
    manifest_in, meta, images = _mad_inputs(mad)
    counts = {"train": int(num_train), "test": int(num_test)}
    pools = {s: meta["index"][meta["split"] == s] for s in SPLIT_KEYS}
    for split, n in counts.items():
        if n and not len(pools[split]):
            raise DataError(f"{mad / 'metadata.csv'}: MAD split {split!r} has no images "
                            f"(needed by --num-{split} {n})")
    labels = _split_labels(meta, len(images))
    total = sum(counts.values())
    with atomic_dir(out, overwrite=overwrite) as tmp:
        arr = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8,
                                        shape=(total, cfg.canvas, cfg.canvas, 3))
        box_rows: list[list[Any]] = []
        scene_rows: list[list[Any]] = []
        n_boxes = {}
        bar = tqdm(total=total, unit="scene", desc="MAD scenes", disable=not progress,
                   file=sys.stderr)
        first = 0
        for split, n in counts.items():
            start_boxes = len(box_rows)
            for c, lo in enumerate(range(0, n, CHUNK_SCENES)):
                rng = np.random.default_rng(np.random.SeedSequence(
                    int(seed), spawn_key=(SPLIT_KEYS[split], c)))
                k = min(CHUNK_SCENES, n - lo)
                layout = layout_chunk(rng, k, pools[split], cfg)
                arr[first : first + k] = paint_chunk(images, layout, cfg.canvas)
                box_caps, scene_caps = caption_chunk(rng, layout, labels, cfg.num_attrs)
                rows = _chunk_rows(first, split, layout, labels, box_caps, scene_caps)
                box_rows += rows[0]
                scene_rows += rows[1]
                first += k
                bar.update(k)
            n_boxes[split] = len(box_rows) - start_boxes
        bar.close()
        arr.flush()
        del arr
        _write_tables(tmp, box_rows, scene_rows)
        context = write_scene_tokenizer(mad, tmp, [r[-1] for r in scene_rows + box_rows])
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "mad": str(mad.resolve()),
            "mad_seed": manifest_in.get("seed"),
            "seed": int(seed),
            "settings": {**cfg.__dict__, "scene_join": SCENE_JOIN, "background": 0,
                         "resize": "triangle filter (PIL BILINEAR), rounded",
                         "chunk_scenes": CHUNK_SCENES},
            "counts": {**counts, "total": total, "boxes_train": n_boxes["train"],
                       "boxes_test": n_boxes["test"]},
            "image_shape": [cfg.canvas, cfg.canvas, 3],
            "tokenizer_context_length": context,
            "box_columns": list(BOX_COLUMNS),
            "scene_columns": list(SCENE_COLUMNS),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n",
                                           encoding="utf-8")
    return out
