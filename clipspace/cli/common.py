"""Argument helpers shared by the command modules: config flags and flag -> key shortcuts."""

from __future__ import annotations

import argparse
from typing import Any

from clipspace.config import PRESETS, Config, load_toml, parse_set, resolve
from clipspace.io import atomic_write_text
from clipspace.tree import to_json


def add_config_args(p: argparse.ArgumentParser, preset: bool = True) -> None:
    """--preset / --config / --set, shared by every command that builds a Config."""
    if preset:
        p.add_argument("--preset", default="clip", choices=sorted(PRESETS), help="method preset")
    p.add_argument("--config", default=None, help="TOML file of overrides")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config key, e.g. --set optim.lr=1e-3 (repeatable)",
    )


def add_prompt_args(p: argparse.ArgumentParser) -> None:
    """--classnames / --templates of an image folder (CLIP_benchmark's file conventions)."""
    p.add_argument("--classnames", default=None, metavar="FILE",
                   help="imagefolder: class names, one per line, in sorted folder order")
    p.add_argument("--templates", default=None, metavar="FILE",
                   help="imagefolder: prompt templates, one per line with {c}, or JSON "
                   "{class name: [prompts]}")


def flag_overrides(args: argparse.Namespace, flags: dict[str, str]) -> dict[str, Any]:
    """{config key: value} of the shortcut flags the user gave (``flags``: dest -> key)."""
    return {key: getattr(args, dest) for dest, key in flags.items()
            if getattr(args, dest, None) is not None}


def config_from_args(args: argparse.Namespace, flags: dict[str, str],
                     base: dict[str, Any] | None = None) -> Config:
    """The one order for every command: preset <- ``base`` (e.g. a fine-tuning preset) <-
    TOML (--config) <- shortcut flags (--lr ...) <- --set (the most explicit wins)."""
    overrides: dict[str, Any] = dict(base or {})
    if args.config:
        overrides.update(load_toml(args.config))
    overrides.update(flag_overrides(args, flags))
    overrides.update(parse_set(args.overrides))
    return resolve(getattr(args, "preset", None) or "clip", overrides)


def describe_flags(flags: dict[str, str]) -> str:
    return ", ".join(f"--{k.replace('_', '-')} -> {v}" for k, v in flags.items())


def emit_json(result: dict[str, Any], out: str | None) -> None:
    """Print ``result`` as JSON and, with ``out``, write it there atomically."""
    text = to_json(result)
    if out:
        atomic_write_text(out, text + "\n")
    print(text)


__all__ = ["add_config_args", "add_prompt_args", "config_from_args", "describe_flags", "emit_json",
           "flag_overrides"]
