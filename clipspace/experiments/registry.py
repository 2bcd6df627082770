"""The registry of ``clipspace reproduce`` experiments: name -> ``Experiment``.

An experiment module declares itself with ``register(Experiment(...))`` next to its function; the
CLI builds one subcommand per entry (``--out``, ``--quick``, ``--workers``, ``--seed`` and the
experiment's own ``options``) and calls ``run(out, quick=, workers=, seed=, **options)``. Every
experiment writes ``results.json``, ``section.json`` (its report section: the paper's claim and
what this run shows) and ``report/report.html`` under ``out``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


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


__all__ = ["EXPERIMENTS", "Experiment", "Option", "register"]
