"""create_model: build a ClipModel from a Config, a preset name or a clipspace checkpoint.

Checkpoint layout written by training: ``<run>/config.json`` and
``<run>/checkpoints/step_N/model.safetensors``. ``pretrained`` may point at the run directory
(latest step), a step directory, or the ``.safetensors`` file; ``config.json`` is looked up next
to the weights and then in up to three parent directories.

Other checkpoint formats (Hugging Face CLIP, a later issue) plug in through
``register_pretrained_loader(matcher, loader)``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from clipspace.config import Config, ConfigError, load, resolve, set_value, validate
from clipspace.errors import ClipspaceError
from clipspace.models.clip_model import DEFAULT_EOT_ID, DEFAULT_PAD_ID, ClipModel

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
_STEP_RE = re.compile(r"^step_(\d+)$")
_UNSET: Any = object()


@dataclass
class PretrainedFiles:
    weights: Path
    config: Path | None


# --- extension hook ------------------------------------------------------------------------------

#: (matcher(path) -> bool, loader(path, config_or_None, overrides, eot_id, pad_id) -> ClipModel)
PretrainedLoader = Callable[[Path, "Config | None", dict[str, Any], Any, int], ClipModel]
_LOADERS: list[tuple[Callable[[Path], bool], PretrainedLoader]] = []


def register_pretrained_loader(matcher: Callable[[Path], bool], loader: PretrainedLoader) -> None:
    """Let another format (e.g. a Hugging Face CLIP directory) handle ``pretrained`` paths for
    which ``matcher(path)`` is true; tried before the clipspace format, newest first."""
    _LOADERS.insert(0, (matcher, loader))


# --- locating and reading checkpoints ------------------------------------------------------------


def _latest_step(checkpoints: Path) -> Path | None:
    steps = [
        (int(m.group(1)), p)
        for p in checkpoints.iterdir()
        if p.is_dir() and (m := _STEP_RE.match(p.name)) and (p / WEIGHTS_NAME).is_file()
    ]
    return max(steps)[1] if steps else None


def find_pretrained(path: str | Path) -> PretrainedFiles:
    """Resolve ``path`` (run dir, step dir or .safetensors file) to weights + config.json."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ClipspaceError(f"pretrained checkpoint not found: {p}")
    if p.is_file():
        if p.suffix != ".safetensors":
            raise ClipspaceError(f"pretrained file {p} is not a .safetensors file")
        weights = p
    elif (p / WEIGHTS_NAME).is_file():
        weights = p / WEIGHTS_NAME
    elif (p / "checkpoints").is_dir() and (step := _latest_step(p / "checkpoints")) is not None:
        weights = step / WEIGHTS_NAME
    elif (step := _latest_step(p)) is not None:  # the checkpoints/ folder itself
        weights = step / WEIGHTS_NAME
    else:
        raise ClipspaceError(
            f"no {WEIGHTS_NAME} in {p} (nor in {p}/checkpoints/step_N/): not a clipspace run"
        )
    config = None
    for parent in [weights.parent, *list(weights.parents)[1:4]]:
        if (parent / CONFIG_NAME).is_file():
            config = parent / CONFIG_NAME
            break
    return PretrainedFiles(weights=weights, config=config)


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state dict, metadata) of a safetensors file."""
    from safetensors import safe_open

    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        for key in fh.keys():
            tensors[key] = fh.get_tensor(key)
    return tensors, dict(meta)


def load_weights(model: ClipModel, path: str | Path, strict: bool = True) -> dict[str, str]:
    """Load a safetensors state dict into ``model``; a mismatch names the offending keys."""
    state, meta = read_weights(path)
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        raise ClipspaceError(
            f"weights in {path} do not fit the configured model (check model.* in its "
            f"config.json): {err}"
        ) from None
    return meta


def weights_metadata(model: ClipModel) -> dict[str, str]:
    """safetensors metadata stored with the weights (text-tower pooling ids)."""
    return {
        "format": "clipspace",
        "eot_id": "" if model.eot_id is None else str(model.eot_id),
        "pad_id": str(model.pad_id),
    }


def save_weights(model: ClipModel, path: str | Path) -> None:
    """Write ``model.state_dict()`` as safetensors, atomically, with ``weights_metadata``."""
    from safetensors.torch import save_file

    from clipspace.io import atomic_save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = weights_metadata(model)
    atomic_save(Path(path), lambda tmp: save_file(state, str(tmp), metadata=meta))


def save_pretrained(model: ClipModel, directory: str | Path) -> Path:
    """``directory/model.safetensors`` + ``directory/config.json`` (the expanded config)."""
    from clipspace.config import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_weights(model, directory / WEIGHTS_NAME)
    save(model.config, directory / CONFIG_NAME)
    return directory


# --- create_model --------------------------------------------------------------------------------


def _apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    cfg = copy.deepcopy(cfg)
    for key, value in overrides.items():
        set_value(cfg, key.replace("__", "."), value)
    validate(cfg)
    return cfg


def _config_from(config: Config | str | None, overrides: dict[str, Any]) -> Config:
    if config is None:
        return resolve("clip", {k.replace("__", "."): v for k, v in overrides.items()})
    if isinstance(config, Config):
        return _apply_overrides(config, overrides)
    if isinstance(config, (str, Path)):
        text = str(config)
        if text.endswith(".json") and Path(text).is_file():
            return _apply_overrides(load(text), overrides)
        if text.endswith(".toml") and Path(text).is_file():
            return resolve("clip", {k.replace("__", "."): v for k, v in overrides.items()}, text)
        return resolve(text, {k.replace("__", "."): v for k, v in overrides.items()})
    raise ConfigError(
        f"create_model: config must be a Config, a preset name or None, got {config!r}"
    )


def _meta_ids(meta: dict[str, str], eot_id: Any, pad_id: Any) -> tuple[Any, int]:
    if eot_id is _UNSET:
        raw = meta.get("eot_id", str(DEFAULT_EOT_ID))
        eot_id = int(raw) if raw else None
    if pad_id is _UNSET:
        pad_id = int(meta.get("pad_id", DEFAULT_PAD_ID))
    return eot_id, pad_id


def create_model(
    config: Config | str | None = None,
    pretrained: str = "",
    *,
    eot_id: int | None = _UNSET,
    pad_id: int = _UNSET,
    **overrides: Any,
) -> ClipModel:
    """Build a ClipModel.

    Args:
        config: a ``Config``; a preset name (``"meru"``), a ``config.json`` or ``.toml`` path; or
            None. With ``pretrained`` and no config, the checkpoint's own config.json is used.
        pretrained: a clipspace run dir / step dir / ``.safetensors`` file (or any format with a
            registered loader). Falls back to ``config.model.pretrained``.
        eot_id, pad_id: text pooling ids (default: from the checkpoint metadata, else 2 and 0,
            the MAD tokenizer's; see ``ClipModel``).
        **overrides: dotted config keys, e.g. ``**{"model.name": "mad-vit"}`` or
            ``model__name="mad-vit"``.
    """
    if not pretrained and isinstance(config, Config) and config.model.pretrained:
        pretrained = config.model.pretrained
    if not pretrained:
        cfg = _config_from(config, overrides)
        e, p = _meta_ids({}, eot_id, pad_id)
        return ClipModel(cfg, eot_id=e, pad_id=p)

    path = Path(pretrained).expanduser()
    from clipspace.models.hf_clip import register as register_hf  # HF CLIP dirs (lazy, idempotent)

    register_hf()
    for matcher, loader in _LOADERS:
        if matcher(path):
            base = None if config is None else _config_from(config, overrides)
            return loader(path, base, overrides, eot_id, pad_id)
    files = find_pretrained(path)
    if config is None:
        if files.config is None:
            raise ClipspaceError(
                f"no {CONFIG_NAME} next to {files.weights} or in its parents: pass a config"
            )
        cfg = _apply_overrides(load(files.config), overrides)
    else:
        cfg = _config_from(config, overrides)
    from safetensors import safe_open

    with safe_open(str(files.weights), framework="pt") as fh:
        meta = dict(fh.metadata() or {})
    e, p = _meta_ids(meta, eot_id, pad_id)
    model = ClipModel(cfg, eot_id=e, pad_id=p)
    load_weights(model, files.weights)
    model.config.model.pretrained = str(files.weights)
    return model


def describe(model: ClipModel) -> dict[str, Any]:
    """Small JSON-able summary: parameter counts per tower and the geometry."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {
        "model": model.config.model.name,
        "geometry": model.config.geometry.name,
        "params_image": count(model.visual) + count(model.image_proj),
        "params_text": count(model.text) + count(model.text_proj),
        "params_total": count(model),
    }


__all__ = [
    "PretrainedFiles",
    "create_model",
    "describe",
    "find_pretrained",
    "load_weights",
    "read_weights",
    "register_pretrained_loader",
    "save_pretrained",
    "save_weights",
]
