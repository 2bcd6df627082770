"""``clipspace demo`` and ``clipspace reproduce imbalance|geometries|radial``."""

from __future__ import annotations

import argparse

from clipspace.config import PRESETS, ConfigError
from clipspace.experiments import (
    reproduce_geometries,
    reproduce_imbalance,
    reproduce_radial,
    run_demo,
)


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job: MAD from embedded MNIST, train clip/euclip/meru/atmg, evaluate, report",
    )
    p.add_argument("--out", default="demo", help="output directory (mad/, runs/, report/)")
    p.add_argument("--quick", action="store_true",
                   help="small data and budget (about 2 minutes on 2 cores)")
    p.add_argument("--presets", default="clip,euclip,meru,atmg", help="comma-separated presets")
    p.add_argument("--workers", type=int, default=2, help="processes for MAD generation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mnist", default="embedded", help="'embedded' or a directory of IDX files")
    p.set_defaults(func=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [p for p in presets if p not in PRESETS]
    if unknown or not presets:
        raise ConfigError(f"--presets: unknown {unknown}; allowed: {', '.join(PRESETS)}")
    run_demo(args.out, quick=args.quick, presets=presets, workers=args.workers, seed=args.seed,
             mnist=args.mnist)
    return 0


def _parse_ks(text: str) -> list[int]:
    try:
        ks = [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        raise ConfigError(f"--ks: expected comma-separated integers, got {text!r}") from None
    if not ks or any(not 0 <= k <= 5 for k in ks):
        raise ConfigError(f"--ks: each k must be in 0..5, got {text!r}")
    return ks


def _add_imbalance(rsub: argparse._SubParsersAction) -> None:
    ri = rsub.add_parser(
        "imbalance",
        help="Two Effects, One Trigger: CLIP on MAD with k = 1..5 attributes per caption",
        description="Trains the clip preset on MAD captions with k attributes for each k, then "
        "plots RMG, MOAD and Recall@1 against k and writes a report.",
    )
    ri.add_argument("--out", default="reproduce-imbalance")
    ri.add_argument("--quick", action="store_true")
    ri.add_argument("--ks", default="1,2,3,4,5", help="comma-separated numbers of attributes")
    ri.add_argument("--preset", default="clip", choices=sorted(PRESETS))
    ri.add_argument("--workers", type=int, default=2)
    ri.add_argument("--seed", type=int, default=0)
    ri.set_defaults(func=run_imbalance)


def run_imbalance(a: argparse.Namespace) -> int:
    reproduce_imbalance(a.out, quick=a.quick, ks=_parse_ks(a.ks), workers=a.workers,
                        seed=a.seed, preset=a.preset)
    return 0


def _add_geometries(rsub: argparse._SubParsersAction) -> None:
    rg = rsub.add_parser(
        "geometries", help="clip, euclip, meru and atmg on identical MAD data and budget",
    )
    rg.add_argument("--out", default="reproduce-geometries")
    rg.add_argument("--quick", action="store_true")
    rg.add_argument("--workers", type=int, default=2)
    rg.add_argument("--seed", type=int, default=0)
    rg.set_defaults(func=run_geometries)


def run_geometries(a: argparse.Namespace) -> int:
    reproduce_geometries(a.out, quick=a.quick, workers=a.workers, seed=a.seed)
    return 0


def _add_radial(rsub: argparse._SubParsersAction) -> None:
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
    rr.set_defaults(func=run_radial)


def run_radial(a: argparse.Namespace) -> int:
    reproduce_radial(a.out, quick=a.quick, model=a.model, mad=a.mad, train_steps=a.train_steps,
                     steps=a.steps, lr=a.lr, overwrite=a.overwrite, progress=not a.no_progress)
    return 0


#: experiment name -> function adding its subcommand under ``clipspace reproduce``
REPRODUCE = {"imbalance": _add_imbalance, "geometries": _add_geometries, "radial": _add_radial}


def add_reproduce(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("reproduce", help="re-run the papers' experiments on embedded data")
    rsub = r.add_subparsers(dest="reproduce_command", metavar="EXPERIMENT")
    rsub.required = True
    for add in REPRODUCE.values():
        add(rsub)
