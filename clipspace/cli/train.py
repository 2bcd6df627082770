"""``clipspace train``: flags in the style of open_clip, each a shortcut for a config key."""

from __future__ import annotations

import argparse
import os

from clipspace.cli.common import add_config_args, config_from_args, describe_flags
from clipspace.train import train

#: open_clip-style flag -> config key (each is a shortcut for --set KEY=VALUE)
TRAIN_FLAGS: dict[str, str] = {
    "data": "data.train",
    "val_data": "data.val",
    "name": "run.name",
    "output_dir": "run.output_dir",
    "steps": "optim.steps",
    "batch_size": "data.batch_size",
    "lr": "optim.lr",
    "wd": "optim.weight_decay",
    "warmup": "optim.warmup_steps",
    "accum_freq": "optim.accum_steps",
    "grad_clip_norm": "optim.grad_clip",
    "precision": "run.precision",
    "workers": "data.workers",
    "seed": "run.seed",
    "device": "run.device",
    "save_every": "run.save_every",
    "eval_every": "run.eval_every",
    "eval_suites": "run.eval_suites",
    "model": "model.name",
}


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (torchrun --nproc_per_node=N -m clipspace.cli train ... for DDP)",
        description="Train from a preset plus overrides. Flags are shortcuts for --set keys: "
        + describe_flags(TRAIN_FLAGS),
    )
    add_config_args(p)
    p.add_argument("--data", help="training data spec, e.g. mad:DIR, csv:FILE, wds:PATTERN")
    p.add_argument("--val-data", dest="val_data",
                   help="validation data spec (validation loss; suites with --eval-every)")
    p.add_argument("--name", help="run name (default: <preset>-<timestamp>)")
    p.add_argument("--output-dir", dest="output_dir", help="parent directory of runs")
    p.add_argument("--model", help="named model config (e.g. mad-vit, vit-b-16) or 'custom'")
    p.add_argument("--steps", type=int, help="optimizer steps")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="global batch size")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--wd", type=float, help="weight decay")
    p.add_argument("--warmup", type=int, help="warmup steps")
    p.add_argument("--accum-freq", dest="accum_freq", type=int,
                   help="micro-batches per step (all samples stay negatives)")
    p.add_argument("--grad-clip-norm", dest="grad_clip_norm", type=float)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"])
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--workers", type=int, help="data loader workers")
    p.add_argument("--seed", type=int)
    p.add_argument("--save-every", dest="save_every", type=int, help="checkpoint every N steps")
    p.add_argument("--eval-every", dest="eval_every", type=int,
                   help="every N steps: validation loss, --eval-suites and the modality gap on "
                   "--val-data (logged as val/...)")
    p.add_argument("--eval-suites", dest="eval_suites",
                   help="suites for --eval-every (default zeroshot,retrieval)")
    p.add_argument("--resume", default=None, metavar="latest|PATH",
                   help="continue a run: 'latest' or a checkpoint / run directory")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    run_dir = train(config_from_args(args, TRAIN_FLAGS), resume=args.resume,
                    overwrite=args.overwrite)
    if os.environ.get("RANK", "0") == "0":
        print(run_dir)
    return 0
