"""Checkpoints: ``<run>/checkpoints/step_<N>/{model.safetensors, state.pt}``, written atomically.

``state.pt`` holds the optimizer, scheduler, RNG states (python, numpy, torch CPU, CUDA) and the
data position (epoch, batches consumed in it, step). Each directory is built under a temporary
name and renamed into place, so a run killed at any moment leaves only complete checkpoints;
``latest`` is the complete ``step_<N>`` with the largest N.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from clipspace.errors import ClipspaceError
from clipspace.io import atomic_dir

CKPT_DIR = "checkpoints"
_STEP_RE = re.compile(r"^step_(\d+)$")


def capture_rng() -> dict[str, Any]:
    """Every RNG state a training step may read."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, sorted by step."""
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    out = []
    for child in root.iterdir():
        m = _STEP_RE.match(child.name)
        if m and (child / "model.safetensors").is_file() and (child / "state.pt").is_file():
            out.append((int(m.group(1)), child))
    return sorted(out)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1][1] if ckpts else None


def resolve_checkpoint(resume: str, run_dir: str | Path) -> Path | None:
    """``latest`` -> newest checkpoint of ``run_dir`` (None if there is none); otherwise ``resume``
    is a checkpoint directory or a run directory (its newest checkpoint)."""
    if resume == "latest":
        return latest_checkpoint(run_dir)
    path = Path(resume)
    if (path / "state.pt").is_file() and (path / "model.safetensors").is_file():
        return path
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is not None:
            return found
    raise ClipspaceError(
        f"--resume {resume!r}: not a checkpoint directory (step_<N> with model.safetensors and "
        "state.pt) nor a run directory holding one"
    )


def run_dir_of(checkpoint: Path) -> Path:
    """``<run>/checkpoints/step_<N>`` -> ``<run>``."""
    return checkpoint.resolve().parent.parent


def save_weights(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_model

    save_model(model, str(path))


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load ``model.safetensors`` (a file or a checkpoint directory) into ``model`` strictly."""
    from safetensors.torch import load_model

    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    try:
        missing, unexpected = load_model(model, str(path), strict=False)
    except RuntimeError as err:  # shape mismatch
        raise ClipspaceError(f"{path}: weights do not match the model: {err}") from None
    if missing or unexpected:
        raise ClipspaceError(
            f"{path}: weights do not match the model (missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]})"
        )
    return model


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: nn.Module,
    state: dict[str, Any],
    keep_last: int = 2,
) -> Path:
    """Write ``step_<step>`` atomically, then delete all but the newest ``keep_last`` (<= 0: keep
    all). ``state`` holds optimizer, scheduler, data position etc.; RNG states are added here."""
    target = Path(run_dir) / CKPT_DIR / f"step_{step}"
    payload = dict(state)
    payload["step"] = step
    payload["rng"] = capture_rng()
    with atomic_dir(target, overwrite=True) as tmp:
        save_weights(model, tmp / "model.safetensors")
        torch.save(payload, tmp / "state.pt")
    if keep_last > 0:
        for _, old in list_checkpoints(run_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(path: str | Path, model: nn.Module) -> dict[str, Any]:
    """Load weights into ``model`` and return the state dict (RNG not yet restored)."""
    path = Path(path)
    load_weights(model, path / "model.safetensors")
    return torch.load(path / "state.pt", map_location="cpu", weights_only=False)
