"""``clipspace finetune re|ec``: text-tower fine-tuning of a pretrained CLIP."""

from __future__ import annotations

import argparse

from clipspace.cli.common import add_config_args, config_from_args, describe_flags
from clipspace.config import FINETUNE_PRESETS
from clipspace.experiments.common import evaluate_run
from clipspace.train import finetune
from clipspace.tree import to_json

#: flag -> config key for ``clipspace finetune`` (shortcuts for --set KEY=VALUE)
FINETUNE_FLAGS: dict[str, str] = {
    "name": "run.name",
    "output_dir": "run.output_dir",
    "lr": "optim.lr",
    "batch_size": "data.batch_size",
    "epochs": "finetune.epochs",
    "seed": "run.seed",
    "device": "run.device",
    "save_every": "run.save_every",
}


def add_finetune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune", help="fine-tune a pretrained CLIP's text tower: Radial Embedding (re) or "
        "the entailment-cone baseline (ec)",
        description="Only the text tower and text projection train. Presets: "
        "re = lambda_p 10, lambda_e 1, lambda_m 1, lr 1e-7, batch 8, one epoch, constant lr; "
        "ec = entailment-cone loss + lambda_p 10 pullback. Flags are shortcuts for --set keys: "
        + describe_flags(FINETUNE_FLAGS),
    )
    p.add_argument("method", choices=sorted(FINETUNE_PRESETS))
    p.add_argument("--model", required=True,
                   help="clipspace run / checkpoint, or a Hugging Face CLIP directory")
    p.add_argument("--data", required=True, help="hierarcaps:TRAIN_CSV or mad:DIR (train chains)")
    add_config_args(p, preset=False)
    p.add_argument("--name", help="run name (default: finetune-<method>-<timestamp>)")
    p.add_argument("--output-dir", dest="output_dir", help="parent directory of runs")
    p.add_argument("--steps", type=int, default=0, help="optimizer steps (default: epochs)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--save-every", dest="save_every", type=int, help="checkpoint every N steps")
    p.add_argument("--resume", default=None, metavar="latest|PATH")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--eval", dest="eval_data", default=None, metavar="DATA",
                   help="afterwards evaluate on mad:DIR or hierarcaps:TEST_CSV[::IMAGES]; "
                   "writes eval.json")
    p.add_argument("--image-dir", default=None, help="HierarCaps test image folder (--eval)")
    p.add_argument("--suite", default="retrieval,hierarchy", help="evaluation suites (--eval)")
    p.add_argument("--export-hf", action="store_true",
                   help="also write <run>/hf, a transformers-loadable directory (HF models)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_finetune)


def run_finetune(args: argparse.Namespace) -> int:
    base = dict(FINETUNE_PRESETS[args.method])
    if args.no_progress:
        base["run.progress"] = False
    cfg = config_from_args(args, FINETUNE_FLAGS, base)
    run_dir = finetune(args.model, cfg, args.data, resume=args.resume, overwrite=args.overwrite,
                       steps=args.steps, export_hf=args.export_hf)
    print(run_dir)
    if args.eval_data:
        suites = [s.strip() for s in args.suite.split(",") if s.strip()]
        data = args.eval_data + (f"::{args.image_dir}" if args.image_dir else "")
        res = evaluate_run(run_dir, data, suites=suites,
                           progress=not args.no_progress, analyse=False)
        hier = res.get("hierarchy", {})
        print(to_json({k: hier.get(k) for k in ("precision", "recall", "tau_d")}, indent=None))
    return 0
