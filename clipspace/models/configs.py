"""Named model configs: tower shapes by name, from tiny CPU models for MAD to paper scale.

A named config sets the *shape* fields of ``ModelConfig`` (embed_dim, image kind/size/width/depth/
heads/patch/mlp ratio, text vocab/context/width/depth/heads/mlp ratio). Style fields
(``final_ln``, ``pos_embed``, ``pool``, ``in_channels``) always come from the config, so a preset
such as euclip (no final LayerNorm) composes with any named config.

Rule of ``apply_named``: a field that still holds its dataclass default takes the named value; a
field set to anything else (by a preset, TOML file or ``--set``) keeps the user's value, e.g.
``model.name=mad-vit, model.image.depth=6`` is mad-vit with 6 blocks. (To force a field back to
its dataclass default value, use ``model.name=custom``.) ``custom`` uses every field as given.

Paper-scale towers (Radford et al. 2021; Desai et al. 2023, MERU): ViT-S/16, ViT-B/16, ViT-B/32,
ViT-L/14 at 224 px with the 12-layer width-512 causal text transformer (8 heads, context 77,
vocab 49408), embed dim 512.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from typing import Any

from clipspace.config import ConfigError, ImageTowerConfig, ModelConfig, TextTowerConfig

_PAPER_TEXT: dict[str, Any] = {
    "vocab_size": 49408,
    "context_length": 77,
    "width": 512,
    "depth": 12,
    "heads": 8,
    "mlp_ratio": 4.0,
}
_MAD_TEXT: dict[str, Any] = {
    "vocab_size": 1000,
    "context_length": 16,
    "width": 128,
    "depth": 2,
    "heads": 2,
    "mlp_ratio": 4.0,
}


def _vit(width: int, depth: int, heads: int, patch: int, size: int = 224) -> dict[str, Any]:
    return {
        "kind": "vit",
        "image_size": size,
        "width": width,
        "depth": depth,
        "heads": heads,
        "patch_size": patch,
        "mlp_ratio": 4.0,
    }


#: name -> {"embed_dim": int, "image": {...}, "text": {...}}; values fill ModelConfig fields.
NAMED_MODELS: dict[str, dict[str, Any]] = {
    "mad-tiny": {
        "embed_dim": 128,
        "image": {"kind": "convnet", "image_size": 28, "width": 32, "depth": 3},
        "text": dict(_MAD_TEXT),
    },
    "mad-convnet": {  # wider ConvNet (64-128-256 channels)
        "embed_dim": 128,
        "image": {"kind": "convnet", "image_size": 28, "width": 64, "depth": 3},
        "text": dict(_MAD_TEXT),
    },
    "mad-vit": {  # the open_clip comparison config of the training benchmark
        "embed_dim": 128,
        "image": _vit(128, 4, 2, 4, size=28),
        "text": {**_MAD_TEXT, "depth": 4},
    },
    "mad-vit-256": {
        "embed_dim": 128,
        "image": _vit(256, 6, 4, 4, size=28),
        "text": {**_MAD_TEXT, "width": 256, "depth": 6, "heads": 4},
    },
    "vit-s-16": {"embed_dim": 512, "image": _vit(384, 12, 6, 16), "text": dict(_PAPER_TEXT)},
    "vit-b-16": {"embed_dim": 512, "image": _vit(768, 12, 12, 16), "text": dict(_PAPER_TEXT)},
    "vit-b-32": {"embed_dim": 512, "image": _vit(768, 12, 12, 32), "text": dict(_PAPER_TEXT)},
    "vit-l-14": {"embed_dim": 512, "image": _vit(1024, 24, 16, 14), "text": dict(_PAPER_TEXT)},
}

CUSTOM = "custom"


def model_names() -> list[str]:
    """All accepted values of ``model.name``."""
    return [*NAMED_MODELS, CUSTOM]


def _normalise(name: str) -> str:
    """'ViT-B/16' and 'vit_b_16' both mean 'vit-b-16'."""
    return name.strip().lower().replace("/", "-").replace("_", "-")


def _fill(section: Any, default: Any, values: dict[str, Any]) -> None:
    for f in fields(section):
        if f.name in values and getattr(section, f.name) == getattr(default, f.name):
            setattr(section, f.name, values[f.name])


def apply_named(model_cfg: ModelConfig) -> ModelConfig:
    """Return a copy of ``model_cfg`` with the named config's shape fields filled in.

    Fields the user changed from the dataclass default keep their value (see module docstring);
    ``name="custom"`` returns an unchanged copy; an unknown name raises ``ConfigError``.
    """
    out = copy.deepcopy(model_cfg)
    key = _normalise(out.name)
    if key == CUSTOM:
        out.name = CUSTOM
        return out
    if key not in NAMED_MODELS:
        raise ConfigError(
            f"config key 'model.name': unknown model {model_cfg.name!r}; allowed: "
            + ", ".join(model_names())
        )
    spec = NAMED_MODELS[key]
    out.name = key
    if out.embed_dim == ModelConfig().embed_dim:
        out.embed_dim = spec["embed_dim"]
    _fill(out.image, ImageTowerConfig(), spec["image"])
    _fill(out.text, TextTowerConfig(), spec["text"])
    return out


__all__ = ["CUSTOM", "NAMED_MODELS", "apply_named", "model_names"]
