"""``clipspace export``: consolidate a sharded (``run.parallel=fsdp``) checkpoint into the one
normal weights file (``train.fsdp.export_weights``)."""

from __future__ import annotations

import argparse

from clipspace.train.fsdp import export_weights


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="turn an FSDP run's sharded checkpoint into one model.safetensors",
        description="Reads the torch.distributed.checkpoint shards of a run.parallel=fsdp "
        "checkpoint in one process (no GPU, no process group) and writes the normal "
        "model.safetensors that eval, embed and create_model(pretrained=...) read. The last "
        "checkpoint of a finished FSDP run already holds one.",
    )
    p.add_argument("source", metavar="RUN",
                   help="run directory (its newest checkpoint) or a step_<N> directory")
    p.add_argument("--out", default=None,
                   help="weights file to write (default: model.safetensors in the step directory)")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    print(export_weights(args.source, args.out))
    return 0
