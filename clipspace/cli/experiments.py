"""``clipspace demo`` and ``clipspace reproduce NAME``: one subcommand per entry of the
experiment registry (``experiments.registry.EXPERIMENTS``), radial's written by hand."""

from __future__ import annotations

import argparse

from clipspace.config import PRESETS, ConfigError
from clipspace.experiments import EXPERIMENTS, Experiment, reproduce_radial, run_demo


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


def _add_registered(rsub: argparse._SubParsersAction, exp: Experiment) -> None:
    """One subcommand from a registry entry: the common flags plus the experiment's options."""
    p = rsub.add_parser(exp.name, help=exp.help, description=exp.description or exp.help)
    p.add_argument("--out", default=exp.default_out, help="output directory")
    p.add_argument("--quick", action="store_true",
                   help="small data and budget (under 2 minutes on 2 cores; CI runs it)")
    p.add_argument("--workers", type=int, default=2, help="processes for MAD generation")
    p.add_argument("--seed", type=int, default=0)
    for opt in exp.options:
        p.add_argument(opt.flag, dest=opt.dest, default=opt.default, choices=opt.choices,
                       help=opt.help + ("" if opt.default is None else
                                        f" (default: {opt.default})"))
    p.set_defaults(func=lambda a: _run_registered(exp, a))


def _run_registered(exp: Experiment, a: argparse.Namespace) -> int:
    options = {}
    for opt in exp.options:  # parsed here so a bad value is a ConfigError (exit 2) naming it
        value = getattr(a, opt.dest)
        options[opt.dest] = opt.type(value) if isinstance(value, str) else value
    exp.run(a.out, quick=a.quick, workers=a.workers, seed=a.seed, **options)
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


#: experiments whose subcommand is written by hand (options beyond the registry's form)
CUSTOM = {"radial": _add_radial}


def add_reproduce(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("reproduce", help="re-run the papers' experiments on embedded data")
    rsub = r.add_subparsers(dest="reproduce_command", metavar="EXPERIMENT")
    rsub.required = True
    for name in sorted({*EXPERIMENTS, *CUSTOM}):
        if name in CUSTOM:
            CUSTOM[name](rsub)
        else:
            _add_registered(rsub, EXPERIMENTS[name])
