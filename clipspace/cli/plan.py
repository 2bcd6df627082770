"""``clipspace plan``: memory per GPU of a training config at a world size (``train.plan``)."""

from __future__ import annotations

import argparse
import json

from clipspace.cli.common import add_config_args, config_from_args, describe_flags
from clipspace.train.plan import PARALLEL, plan_memory

#: flag -> config key (the subset of ``clipspace train``'s flags that changes memory)
PLAN_FLAGS: dict[str, str] = {
    "model": "model.name",
    "batch_size": "data.batch_size",
    "precision": "run.precision",
}


def add_plan(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="memory per GPU of a training config at a world size (before renting GPUs)",
        description="Parameters, gradients, optimizer state, measured activations (with and "
        "without model.grad_checkpointing) and contrastive logits per GPU. Flags are shortcuts "
        "for --set keys: " + describe_flags(PLAN_FLAGS),
    )
    add_config_args(p)
    p.add_argument("--model", help="named model config (e.g. vit-b-16, vit-l-14)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="global batch size")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                   help="activation precision (auto: bf16, as on a GPU)")
    p.add_argument("--world-size", dest="world_size", type=int, default=1,
                   help="number of GPUs (processes)")
    p.add_argument("--parallel", choices=PARALLEL, default="ddp",
                   help="ddp: full state per GPU; fsdp: state sharded over the world")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=run_plan)


def run_plan(args: argparse.Namespace) -> int:
    plan = plan_memory(config_from_args(args, PLAN_FLAGS), args.world_size, args.parallel)
    if args.json:
        print(json.dumps({"params": plan.params, "per_gpu_batch": plan.per_gpu_batch,
                          "bytes": dict(plan.rows())}, indent=1))
    else:
        print(plan.text())
        print("(a lower bound: add the CUDA context, communication buckets and allocator "
              "headroom, 10-20 %)")
    return 0
