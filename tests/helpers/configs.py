"""Tiny model and run configurations for training tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clipspace.config import Config, resolve

# a very small custom model: fast enough for dozens of steps per test on a loaded 2-core CPU
TINY: dict[str, Any] = {
    "model.name": "custom",
    "model.embed_dim": 32,
    "model.image.kind": "vit",
    "model.image.image_size": 28,
    "model.image.width": 32,
    "model.image.depth": 1,
    "model.image.heads": 2,
    "model.image.patch_size": 7,
    "model.text.width": 32,
    "model.text.depth": 1,
    "model.text.heads": 2,
    "model.text.vocab_size": 512,
    "model.text.context_length": 16,
}


def set_flags(overrides: dict[str, Any]) -> list[str]:
    """``--set key=value`` command-line flags for dotted ``overrides`` (e.g. ``TINY``)."""
    return [x for k, v in overrides.items() for x in ("--set", f"{k}={v}")]


def tiny_config(preset: str, mad: Path, out: Path, name: str = "run", **over: Any) -> Config:
    """A tiny run of ``preset`` on ``mad``; ``over`` holds dotted keys with '.' as '__'."""
    overrides: dict[str, Any] = dict(TINY)
    overrides.update({
        "data.train": f"mad:{mad}",
        "data.batch_size": 32,
        "optim.steps": 20,
        "optim.warmup_steps": 2,
        "optim.lr": 3e-3,
        "run.output_dir": str(out),
        "run.name": name,
        "run.progress": False,
        "run.tensorboard": False,
        "run.threads": 1,
        "run.log_every": 1,
    })
    overrides.update({k.replace("__", "."): v for k, v in over.items()})
    return resolve(preset, overrides)
