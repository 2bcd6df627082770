"""``clipspace reproduce geometries``: clip, euclip, meru and atmg on identical MAD data and
budget, hierarchy metrics included (the demo's comparison, kept as its own experiment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clipspace.experiments.demo import run_demo
from clipspace.experiments.registry import Experiment, register


def reproduce_geometries(out: str | Path = "reproduce-geometries", quick: bool = False,
                         workers: int = 2, seed: int = 0) -> dict[str, dict[str, Any]]:
    """The four presets on identical data and budget; returns {preset: metrics}."""
    return run_demo(out, quick=quick, workers=workers, seed=seed,
                    title="Geometries on MAD: clip, euclip, meru, atmg")


register(Experiment(
    name="geometries", paper="EuCLIP / MERU / ATMG", run=reproduce_geometries,
    help="clip, euclip, meru and atmg on identical MAD data and budget",
))

__all__ = ["reproduce_geometries"]
