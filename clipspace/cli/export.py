"""``clipspace export``: consolidate a sharded (``run.parallel=fsdp``) checkpoint into the one
normal weights file (``train.fsdp.export_weights``); with ``--merge``, fold an adapted run's LoRA
adapters into a stand-alone model (``models.factory.export_merged``)."""

from __future__ import annotations

import argparse

from clipspace.errors import ClipspaceError
from clipspace.models.factory import export_merged
from clipspace.train.fsdp import export_weights


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="turn an FSDP run's sharded checkpoint into one model.safetensors; --merge: an "
        "adapted run (finetune geometry) into a stand-alone model",
        description="Reads the torch.distributed.checkpoint shards of a run.parallel=fsdp "
        "checkpoint in one process (no GPU, no process group) and writes the normal "
        "model.safetensors that eval, embed and create_model(pretrained=...) read. The last "
        "checkpoint of a finished FSDP run already holds one. With --merge --out DIR: the "
        "LoRA adapters of a `clipspace finetune geometry` run folded into their layers, "
        "written as a model that needs no base (transformers bases: also DIR/hf, a "
        "transformers directory).",
    )
    p.add_argument("source", metavar="RUN",
                   help="run directory (its newest checkpoint) or a step_<N> directory")
    p.add_argument("--out", default=None,
                   help="weights file to write (default: model.safetensors in the step directory); "
                   "with --merge: the directory to write (required)")
    p.add_argument("--merge", action="store_true",
                   help="fold an adapted run's LoRA adapters into a stand-alone model")
    p.add_argument("--overwrite", action="store_true", help="with --merge: replace --out")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    if args.merge:
        if not args.out:
            raise ClipspaceError("export --merge needs --out DIR (the directory to write)")
        print(export_merged(args.source, args.out, overwrite=args.overwrite))
        return 0
    print(export_weights(args.source, args.out))
    return 0
