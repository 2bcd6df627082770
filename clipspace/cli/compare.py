"""``clipspace compare``: models x benchmarks, gap and bias, gap-performance correlation."""

from __future__ import annotations

import argparse

from clipspace.experiments.compare import compare


def add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="every model on every benchmark with its modality gap "
                       "and object bias, and the correlation of gap with performance")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="runs, checkpoints or transformers directories")
    p.add_argument("--data", nargs="+", required=True, metavar="SPEC",
                   help="mad:DIR, hierarcaps:CSV or imagefolder:DIR (one or more)")
    p.add_argument("--out", default="compare", help="output directory (compare.json/.md/.html)")
    p.add_argument("--max-samples", type=int, default=0, help="a seeded random subset (0: all)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    compare(args.models, args.data, args.out, args.max_samples, progress=not args.no_progress)
    return 0
