"""The registry of ``clipspace reproduce`` experiments: name -> ``Experiment``.

An experiment module declares itself with ``register(Experiment(...))`` next to its function; the
CLI builds one subcommand per entry (``--out``, ``--quick``, ``--workers``, ``--seed`` and the
experiment's own ``options``) and calls ``run(out, quick=, workers=, seed=, **options)``. Every
experiment writes ``results.json``, ``section.json`` (its report section: the paper's claim and
what this run shows) and ``report/report.html`` under ``out``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from clipspace.config import ConfigError


@dataclass(frozen=True)
class Option:
    """One experiment-specific CLI flag (``--flag``); ``type`` parses the text (a ConfigError
    from it exits 2 naming the flag)."""

    flag: str
    help: str
    default: Any = None
    type: Callable[[str], Any] = str
    choices: Sequence[str] | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Experiment:
    """A paper's experiment as one function ``run(out, quick, workers, seed, **options)``."""

    name: str
    paper: str  # "Two Effects, One Trigger", "EuCLIP", "MERU", "ATMG", "Radial Embedding", ...
    help: str
    run: Callable[..., Any]
    options: tuple[Option, ...] = ()
    description: str = ""

    @property
    def default_out(self) -> str:
        return f"reproduce-{self.name}"


EXPERIMENTS: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    """Add ``experiment`` under its name (a name is registered once)."""
    if experiment.name in EXPERIMENTS:
        raise ValueError(f"experiment {experiment.name!r} is already registered")
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def names_parser(flag: str, allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """A parser of ``--flag a,b``: a non-empty subset of ``allowed``, in the order given, each
    name once."""

    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in allowed]
        if not names or unknown:
            raise ConfigError(f"{flag}: expected a comma-separated subset of "
                              f"{', '.join(allowed)}, got {text!r}")
        return list(dict.fromkeys(names))

    return parse


def number_parser(flag: str, kind: type = int, low: float | None = None,
                  high: float | None = None, above: float | None = None) -> Callable[[str], Any]:
    """A parser of ``--flag N``: a finite ``kind`` (int or float) with ``low <= N <= high`` and
    ``N > above`` where given."""
    word = "an integer" if kind is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise ConfigError(f"{flag}: expected {word}, got {text!r}") from None
        bad = (not math.isfinite(value) or (low is not None and value < low)
               or (high is not None and value > high) or (above is not None and value <= above))
        if bad:
            raise ConfigError(f"{flag}: expected {word}{_bounds(low, high, above)}, got {text!r}")
        return value

    return parse


def _bounds(low: float | None, high: float | None, above: float | None) -> str:
    parts = [f">= {low}" if low is not None else "", f"<= {high}" if high is not None else "",
             f"> {above}" if above is not None else ""]
    return "".join(f" {p}" for p in parts if p)


def int_list_parser(flag: str, low: int, high: int) -> Callable[[str], list[int]]:
    """A parser of ``--flag 1,2,3``: a non-empty list of integers in ``low..high``."""
    one = number_parser(flag, int, low, high)

    def parse(text: str) -> list[int]:
        values = [one(k) for k in text.split(",") if k.strip()]
        if not values:
            raise ConfigError(f"{flag}: expected comma-separated integers, got {text!r}")
        return values

    return parse


__all__ = ["EXPERIMENTS", "Experiment", "Option", "int_list_parser", "names_parser",
           "number_parser", "register"]
