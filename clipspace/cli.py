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
# <<< end data >>>

# <<< tokenizer >>>
# <<< end tokenizer >>>

# <<< train >>>
# <<< end train >>>

# <<< eval >>>
# <<< end eval >>>

# <<< analyze >>>
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
# <<< end demo >>>

# <<< finetune >>>
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
