"""``clipspace finetune re|ec``: text-tower fine-tuning of a pretrained CLIP;
``clipspace finetune geometry``: a pretrained model moved into a preset's geometry with LoRA
adapters or unlocked towers (``models.adapt``), trained by the training engine."""

from __future__ import annotations

import argparse

from clipspace.cli.common import add_config_args, config_from_args, describe_flags
from clipspace.config import FINETUNE_PRESETS, PRESETS, ConfigError
from clipspace.eval.retention import RETENTION_SUITES, format_retention, retention
from clipspace.experiments.common import evaluate_run
from clipspace.io import atomic_write_text
from clipspace.models import load_model_and_tokenizer
from clipspace.train import finetune, train
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
#: ``finetune geometry``: the training flags plus the adaptation's (--model is adapt.base)
GEOMETRY_FLAGS: dict[str, str] = {
    **{k: v for k, v in FINETUNE_FLAGS.items() if k != "epochs"},
    "model": "adapt.base",
    "data": "data.train",
    "val_data": "data.val",
    "precision": "run.precision",
    "lora_r": "adapt.lora_r",
    "lora_alpha": "adapt.lora_alpha",
    "lora_dropout": "adapt.lora_dropout",
    "lora_targets": "adapt.lora_targets",
    "unlock": "adapt.unlock",
    "lock_layers": "adapt.lock_layers",
}
#: flags only ``finetune geometry`` reads
GEOMETRY_ONLY = ("preset", "val_data", "precision", "lora_r", "lora_alpha", "lora_dropout",
                 "lora_targets", "unlock", "lock_layers")


def add_finetune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune", help="fine-tune a pretrained CLIP's text tower: Radial Embedding (re) or "
        "the entailment-cone baseline (ec)",
        description="Only the text tower and text projection train. Presets: "
        "re = lambda_p 10, lambda_e 1, lambda_m 1, lr 1e-7, batch 8, one epoch, constant lr; "
        "ec = entailment-cone loss + lambda_p 10 pullback. Flags are shortcuts for --set keys: "
        + describe_flags(FINETUNE_FLAGS) + ". geometry = the pretrained model moved into "
        "--preset's geometry: LoRA adapters (--lora-r) or unlocked towers (--unlock), the "
        "projections and geometry parameters in full, trained like `clipspace train` (resume, "
        "checkpoints, DDP); flags: " + describe_flags(GEOMETRY_FLAGS),
    )
    p.add_argument("method", choices=[*sorted(FINETUNE_PRESETS), "geometry"])
    p.add_argument("--model", required=True,
                   help="clipspace run / checkpoint, or a Hugging Face CLIP directory")
    p.add_argument("--data", required=True, help="re/ec: hierarcaps:TRAIN_CSV or mad:DIR (train "
                   "chains); geometry: training data, mad:DIR, csv:FILE, wds:PATTERN")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="geometry: the target preset (geometry, loss, scalars)")
    p.add_argument("--val-data", dest="val_data", help="geometry: validation data spec")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="geometry")
    p.add_argument("--lora-r", dest="lora_r", type=int,
                   help="geometry: LoRA rank (0 = no adapters; default 8 unless --unlock)")
    p.add_argument("--lora-alpha", dest="lora_alpha", type=float, help="geometry: LoRA alpha")
    p.add_argument("--lora-dropout", dest="lora_dropout", type=float)
    p.add_argument("--lora-targets", dest="lora_targets",
                   help="geometry: comma-separated module names or suffixes (default: attention "
                   "and MLP linear layers of both towers)")
    p.add_argument("--unlock", choices=["image", "text", "both"],
                   help="geometry: train these towers in full instead of adapters")
    p.add_argument("--lock-layers", dest="lock_layers", type=int,
                   help="geometry, with --unlock: embeddings and first N blocks stay frozen")
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
    p.add_argument("--eval", "--eval-data", dest="eval_data", default=None, metavar="DATA",
                   help="afterwards evaluate on mad:DIR or hierarcaps:TEST_CSV[::IMAGES]; "
                   "writes eval.json; geometry: any evaluation data, the knowledge-retention "
                   "report (pretrained model before and after) in retention.json")
    p.add_argument("--image-dir", default=None, help="HierarCaps test image folder (--eval)")
    p.add_argument("--suite", default=None, help="evaluation suites (--eval; default "
                   "retrieval,hierarchy; geometry: " + ",".join(RETENTION_SUITES) + ")")
    p.add_argument("--eval-samples", dest="eval_samples", type=int, default=0,
                   help="geometry --eval: at most this many test samples (0 = all)")
    p.add_argument("--export-hf", action="store_true",
                   help="also write <run>/hf, a transformers-loadable directory (HF models)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_finetune)


def run_finetune(args: argparse.Namespace) -> int:
    if args.method == "geometry":
        return run_geometry(args)
    given = [f"--{k.replace('_', '-')}" for k in GEOMETRY_ONLY if getattr(args, k) is not None]
    if given:
        raise ConfigError(f"{', '.join(given)}: only for `clipspace finetune geometry`")
    base = dict(FINETUNE_PRESETS[args.method])
    if args.no_progress:
        base["run.progress"] = False
    cfg = config_from_args(args, FINETUNE_FLAGS, base)
    run_dir = finetune(args.model, cfg, args.data, resume=args.resume, overwrite=args.overwrite,
                       steps=args.steps, export_hf=args.export_hf)
    print(run_dir)
    if args.eval_data:
        suites = [s.strip() for s in (args.suite or "retrieval,hierarchy").split(",") if s.strip()]
        data = args.eval_data + (f"::{args.image_dir}" if args.image_dir else "")
        res = evaluate_run(run_dir, data, suites=suites,
                           progress=not args.no_progress, analyse=False)
        hier = res.get("hierarchy", {})
        print(to_json({k: hier.get(k) for k in ("precision", "recall", "tau_d")}, indent=None))
    return 0


def run_geometry(args: argparse.Namespace) -> int:
    """Train the adaptation; with --eval-data, the retention report (retention.json)."""
    if args.preset is None:
        raise ConfigError("finetune geometry needs --preset (the target geometry), e.g. "
                          "--preset meru")
    base = {"run.progress": not args.no_progress, "run.name": args.name or
            f"adapt-{args.preset}-{'lora' if args.unlock is None else 'unlock'}"}
    if args.unlock is None and args.lora_r is None:
        base["adapt.lora_r"] = 8
    if args.steps:
        base["optim.steps"] = args.steps
    cfg = config_from_args(args, GEOMETRY_FLAGS, base)
    run_dir = train(cfg, resume=args.resume, overwrite=args.overwrite)
    print(run_dir)
    if args.eval_data:
        suites = [s.strip() for s in (args.suite or ",".join(RETENTION_SUITES)).split(",")
                  if s.strip()]
        before, tok_before = load_model_and_tokenizer(cfg.adapt.base)
        after, tok_after = load_model_and_tokenizer(run_dir)
        report = retention(before, after, args.eval_data, (tok_before, tok_after), suites,
                           args.eval_samples, progress=not args.no_progress)
        atomic_write_text(run_dir / "retention.json", to_json(report) + "\n")
        print(format_retention(report))
    return 0
