"""The ``clipspace`` command line: one module per command group, one explicit table.

Each module has ``add_<command>(subparsers)`` (its arguments, ``func`` set to its runner); the
runner calls the Python API. Bad input (``ClipspaceError``, a ``ValueError``) exits with code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from clipspace import __version__
from clipspace.cli.analyze import add_analyze
from clipspace.cli.compare import add_compare
from clipspace.cli.data import add_data, add_tokenizer
from clipspace.cli.embed import add_embed
from clipspace.cli.eval import add_eval
from clipspace.cli.experiments import add_demo, add_reproduce
from clipspace.cli.export import add_export
from clipspace.cli.finetune import add_finetune
from clipspace.cli.plan import add_plan
from clipspace.cli.report import add_report
from clipspace.cli.train import add_train
from clipspace.errors import ClipspaceError

#: command -> adder, in the order ``clipspace --help`` lists them
COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "demo": add_demo,
    "data": add_data,
    "tokenizer": add_tokenizer,
    "train": add_train,
    "plan": add_plan,
    "finetune": add_finetune,
    "export": add_export,
    "embed": add_embed,
    "eval": add_eval,
    "analyze": add_analyze,
    "compare": add_compare,
    "report": add_report,
    "reproduce": add_reproduce,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipspace",
        description="Train, fine-tune, evaluate and analyse CLIP-style models in spherical, "
        "Euclidean and hyperbolic space.",
    )
    parser.add_argument("--version", action="version", version=f"clipspace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in COMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except (ClipspaceError, FileExistsError) as err:
        print(f"clipspace: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clipspace: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


__all__ = ["COMMANDS", "build_parser", "main"]
