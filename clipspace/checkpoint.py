"""The one checkpoint format: run-directory layout, lookup, and weights with metadata.

Layout of a run directory (training and fine-tuning write the same one)::

    <run>/config.json                       resolved config (model section expanded)
    <run>/tokenizer.json                    the tokenizer the run trained with
    <run>/checkpoints/step_<N>/model.safetensors   weights + metadata (format, eot_id, pad_id)
    <run>/checkpoints/step_<N>/state.pt     optimizer, schedule, data position, RNG states
    <run>/checkpoints/step_<N>/sharded/     run.parallel=fsdp only: a torch.distributed.checkpoint
                                            directory of model + optimizer shards (state.pt then
                                            holds no optimizer; model.safetensors only in the last
                                            checkpoint; clipspace.train.fsdp)

Each ``step_<N>`` is built under a temporary name and renamed into place, so a killed run leaves
only complete checkpoints. ``create_model(pretrained=...)`` accepts the run directory (newest
step), a step directory or the ``.safetensors`` file; ``find_weights`` resolves all three.

This module knows no model class: weights are any ``nn.Module``; its metadata comes from the
module's ``weights_metadata()`` method when it has one.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_file, save_model
from torch import nn

from clipspace.errors import ClipspaceError
from clipspace.io import atomic_dir, atomic_save

CKPT_DIR = "checkpoints"
WEIGHTS_NAME = "model.safetensors"
STATE_NAME = "state.pt"
CONFIG_NAME = "config.json"
TOKENIZER_NAME = "tokenizer.json"
SHARDED_NAME = "sharded"
#: weights-file header mark: the file holds only what is not the model's base (adapted models)
PARTIAL_KEY = "partial"
#: the file torch.distributed.checkpoint writes last into a complete sharded directory
_DCP_METADATA = ".metadata"
_STEP_RE = re.compile(r"^step_(\d+)$")


# ---- layout and lookup ---------------------------------------------------------------------------


def step_dir(run_dir: str | Path, step: int) -> Path:
    """``<run>/checkpoints/step_<step>``."""
    return Path(run_dir) / CKPT_DIR / f"step_{step}"


def has_sharded(path: Path) -> bool:
    """Whether checkpoint directory ``path`` holds a complete sharded (DCP) directory."""
    return (path / SHARDED_NAME / _DCP_METADATA).is_file()


def is_complete(path: Path) -> bool:
    """A resumable checkpoint: ``state.pt`` and the weights (``model.safetensors``, or the
    ``sharded/`` directory of an FSDP run)."""
    return (path / STATE_NAME).is_file() and ((path / WEIGHTS_NAME).is_file()
                                               or has_sharded(path))


def _steps_in(folder: Path, need_state: bool) -> list[tuple[int, Path]]:
    """``need_state``: resumable checkpoints (``is_complete``); else those with a weights file."""
    if not folder.is_dir():
        return []
    out = []
    for child in folder.iterdir():
        m = _STEP_RE.match(child.name)
        if not m:
            continue
        if not (is_complete(child) if need_state else (child / WEIGHTS_NAME).is_file()):
            continue
        out.append((int(m.group(1)), child))
    return sorted(out)


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete (weights + state) checkpoints of a run, sorted by step."""
    return _steps_in(Path(run_dir) / CKPT_DIR, need_state=True)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The complete ``step_<N>`` with the largest N, or None."""
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1][1] if ckpts else None


def resolve_checkpoint(resume: str | Path) -> Path:
    """``--resume PATH``: a checkpoint directory, or a run directory (its newest checkpoint)."""
    path = Path(resume)
    if is_complete(path):
        return path
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is not None:
            return found
    raise ClipspaceError(
        f"--resume {str(resume)!r}: not a checkpoint directory (step_<N> with {WEIGHTS_NAME} and "
        f"{STATE_NAME}) nor a run directory holding one"
    )


def run_dir_of(checkpoint: Path) -> Path:
    """``<run>/checkpoints/step_<N>`` -> ``<run>``."""
    return checkpoint.resolve().parent.parent


@dataclass
class WeightFiles:
    """Weights file of a ``pretrained`` path and the config.json that describes it (or None)."""

    weights: Path
    config: Path | None


def find_near(start: Path, name: str, parents: int = 3) -> Path | None:
    """``start/name`` (``start`` a directory or a file's folder) or in up to ``parents`` parents
    (a step directory sits three levels below its run)."""
    folder = start if start.is_dir() else start.parent
    for d in [folder, *list(folder.parents)[:parents]]:
        if (d / name).is_file():
            return d / name
    return None


def find_weights(path: str | Path) -> WeightFiles:
    """Resolve a run dir (newest step), step dir or ``.safetensors`` file to its weights and
    config.json (next to the weights or up to three parents up)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ClipspaceError(f"pretrained checkpoint not found: {p}")
    if p.is_file():
        if p.suffix != ".safetensors":
            raise ClipspaceError(f"pretrained file {p} is not a .safetensors file")
        weights = p
    elif (p / WEIGHTS_NAME).is_file():
        weights = p / WEIGHTS_NAME
    else:
        steps = _steps_in(p / CKPT_DIR, need_state=False) or _steps_in(p, need_state=False)
        if not steps:
            raise ClipspaceError(
                f"no {WEIGHTS_NAME} in {p} (nor in {p}/{CKPT_DIR}/step_N/): not a clipspace run"
            )
        weights = steps[-1][1] / WEIGHTS_NAME
    return WeightFiles(weights=weights, config=find_near(weights.parent, CONFIG_NAME))


# ---- weights ---------------------------------------------------------------------------------


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors metadata of a weights file (empty dict if none)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except (OSError, ValueError, SafetensorError) as err:
        raise ClipspaceError(f"{path}: corrupt or truncated weights file "
                             f"({type(err).__name__}: {err})") from None


def write_weights(module: nn.Module, path: str | Path) -> Path:
    """Write ``module``'s parameters and buffers as safetensors, atomically, with the module's
    ``weights_metadata()`` (if it defines one) stored in the file header. A module whose
    ``checkpoint_state()`` returns a dict (a model adapted from a base: only what is not the
    base's) is written as that dict, marked ``partial`` in the header."""
    meta_fn = getattr(module, "weights_metadata", None)
    meta = {str(k): str(v) for k, v in (meta_fn() if callable(meta_fn) else {}).items()}
    state_fn = getattr(module, "checkpoint_state", None)
    state = state_fn() if callable(state_fn) else None
    path = Path(path)
    if state is None:
        atomic_save(path, lambda tmp: save_model(module, str(tmp), metadata=meta or None))
    else:
        tensors = {k: v.detach().contiguous() for k, v in state.items()}
        meta[PARTIAL_KEY] = "1"
        atomic_save(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    return path


def load_weights(module: nn.Module, path: str | Path) -> dict[str, str]:
    """Load a safetensors file (or a directory holding ``model.safetensors``) into ``module``
    strictly; a mismatch names the file and the offending keys. A ``partial`` file (header
    mark of ``write_weights``) may leave out exactly the frozen parameters (``requires_grad``
    False), which the module already holds from its base. Returns the file's metadata."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    meta = read_metadata(path)
    try:
        missing, unexpected = load_model(module, str(path), strict=False)
    except RuntimeError as err:  # shape mismatch
        raise ClipspaceError(
            f"weights in {path} do not fit the configured model (check model.* in its "
            f"config.json): {err}"
        ) from None
    except (OSError, ValueError, SafetensorError) as err:  # truncated / not safetensors
        raise ClipspaceError(f"{path}: corrupt or truncated weights file "
                             f"({type(err).__name__}: {err})") from None
    if meta.get(PARTIAL_KEY) == "1":
        frozen = {n for n, p in module.named_parameters() if not p.requires_grad}
        missing = [k for k in missing if k not in frozen]
    if missing or unexpected:
        raise ClipspaceError(
            f"weights in {path} do not fit the configured model (missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]})"
        )
    return meta


# ---- training checkpoints ------------------------------------------------------------------------


def save_checkpoint(
    run_dir: str | Path, step: int, model: nn.Module, state: dict[str, Any], keep_last: int = 2
) -> Path:
    """Write ``step_<step>`` (weights + ``state``) atomically, then delete all but the newest
    ``keep_last`` complete checkpoints (<= 0: keep all)."""
    target = step_dir(run_dir, step)
    payload = {**state, "step": step}
    with atomic_dir(target, overwrite=True) as tmp:
        write_weights(model, tmp / WEIGHTS_NAME)
        torch.save(payload, tmp / STATE_NAME)
    if keep_last > 0:
        prune_checkpoints(run_dir, keep_last)
    return target


def prune_checkpoints(run_dir: str | Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` (> 0) complete checkpoints."""
    for _, old in list_checkpoints(run_dir)[:-keep_last]:
        _remove_dir(old)


def _remove_dir(path: Path) -> None:
    """Delete a checkpoint so that a kill never leaves half of it under its own name: rename to
    ``.step_N.deleting`` (atomic), then remove (``clean_leftovers`` finishes a killed one)."""
    doomed = path.with_name(f".{path.name}.deleting")
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def read_state(path: str | Path) -> dict[str, Any]:
    """A checkpoint's ``state.pt`` read with ``torch.load(weights_only=True)``: tensors, numbers,
    strings, lists and dicts only, so a crafted file cannot run code. Files of older clipspace
    versions (pickled numpy RNG state) are refused with a message naming the file."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ClipspaceError(
            f"{path}: refused to load: it holds Python objects other than tensors, numbers, "
            "strings, lists and dicts (a checkpoint of clipspace before 0.2, or a crafted file; "
            f"loading it could run code). Start a new run or resume from a newer checkpoint "
            f"({str(err).splitlines()[0][:120]})"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        raise ClipspaceError(f"{path}: corrupt or truncated checkpoint state "
                             f"({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise ClipspaceError(f"{path}: not a clipspace checkpoint state (no 'step')")
    return state


def load_checkpoint(path: str | Path, model: nn.Module) -> dict[str, Any]:
    """Load the weights of checkpoint ``path`` into ``model``; return its saved state (both
    verified: a truncated or foreign file is a ClipspaceError naming it)."""
    path = Path(path)
    state = read_state(path / STATE_NAME)
    load_weights(model, path / WEIGHTS_NAME)
    return state


def load_newest_good(run_dir: str | Path, model: nn.Module
                     ) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of ``run_dir`` that loads (weights into ``model``, and its state);
    a corrupt newer one is skipped with a warning naming it. None if there is none at all."""
    ckpts = list_checkpoints(run_dir)
    for _, path in reversed(ckpts):
        try:
            return path, load_checkpoint(path, model)
        except ClipspaceError as err:
            warnings.warn(f"skipping checkpoint {path}: {err}", stacklevel=2)
    if ckpts:
        raise ClipspaceError(f"{run_dir}: no checkpoint loads ({len(ckpts)} tried, all corrupt)")
    return None


def clean_leftovers(run_dir: str | Path) -> list[Path]:
    """Remove what a killed run can leave in ``<run>/checkpoints``: ``.step_N.*.partial``
    build directories, ``.*.old`` / ``.*.deleting`` directories, and ``step_N`` directories
    missing a file (a half-deleted checkpoint). Returns what was removed."""
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    removed = []
    for child in root.iterdir():
        incomplete = _STEP_RE.match(child.name) and not is_complete(child)
        if child.name.startswith(".") or incomplete:
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
            removed.append(child)
    return removed


__all__ = [
    "CKPT_DIR",
    "CONFIG_NAME",
    "SHARDED_NAME",
    "STATE_NAME",
    "TOKENIZER_NAME",
    "WEIGHTS_NAME",
    "WeightFiles",
    "find_near",
    "find_weights",
    "clean_leftovers",
    "has_sharded",
    "is_complete",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_newest_good",
    "load_weights",
    "prune_checkpoints",
    "read_metadata",
    "read_state",
    "resolve_checkpoint",
    "run_dir_of",
    "save_checkpoint",
    "step_dir",
    "write_weights",
]
