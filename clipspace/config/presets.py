"""Presets are data: method presets, fine-tuning presets and named model shapes.

* ``PRESETS``: one dict of dotted overrides per method (clip, euclip, meru, atmg); the
  method's behaviour follows these fields, never its name.
* ``FINETUNE_PRESETS``: overrides for ``clipspace finetune re|ec`` (docs/reference.md section 3).
* ``NAMED_MODELS``: tower shapes by name, from tiny CPU models for MAD to paper scale (Radford
  et al. 2021; Desai et al. 2023, MERU): ViT-S/16, ViT-B/16, ViT-B/32, ViT-L/14 at 224 px with
  the 12-layer width-512 causal text transformer (8 heads, context 77, vocab 49408), embed dim
  512. A named shape sets embed_dim and the image/text shape fields; style fields (final_ln,
  pos_embed, pool, norm, in_channels) are left alone, so euclip (no final LayerNorm) composes
  with any named model. ``named_overrides`` turns a name into dotted keys: the layer that setting
  ``model.name`` applies, before any later key.
"""

from __future__ import annotations

from typing import Any

#: MERU (Desai et al. 2023); HyCoCLIP keeps it and adds the compositional objective
_MERU: dict[str, Any] = {
    "geometry.name": "lorentz",
    "geometry.embed_scale": "alpha",
    "geometry.curv": 1.0,
    "geometry.learn_curv": True,
    "loss.contrastive": "infonce",
    "loss.logit": "neg_dist",
    "loss.logit_scale": 1 / 0.07,
    "loss.entail_weight": 0.2,
}

PRESETS: dict[str, dict[str, Any]] = {
    "clip": {
        "geometry.name": "sphere",
        "geometry.embed_scale": "none",
        "loss.contrastive": "infonce",
        "loss.logit": "cosine",
        "loss.logit_scale": 1 / 0.07,
    },
    "euclip": {
        "geometry.name": "euclidean",
        "geometry.embed_scale": "sqrt_dim",
        "loss.contrastive": "infonce",
        "loss.logit": "neg_sqdist",
        "loss.logit_scale": 1.0,
        "model.image.final_ln": False,
        "model.text.final_ln": False,
    },
    "meru": _MERU,
    "atmg": {
        "geometry.name": "lorentz",
        "geometry.embed_scale": "alpha",
        "geometry.curv": 0.1,
        "geometry.learn_curv": False,
        "loss.contrastive": "angle",
        "loss.logit_scale": 1 / 0.07,
        "loss.centroid_weight": 0.5,
        "loss.centroid_p": 2.0,
        "loss.centroid_q": 0.5,
    },
    # HyCoCLIP (Pal et al., ICLR 2025): MERU's geometry and scalars, the compositional objective
    # on batches with boxes (scenes:DIR); its Euclidean twin keeps everything but the geometry
    "hycoclip": {**_MERU, "loss.compositional": True},
    "hycoclip-euclid": {
        "geometry.name": "euclidean",
        "geometry.embed_scale": "alpha",
        "loss.contrastive": "infonce",
        "loss.logit": "neg_dist",
        "loss.logit_scale": 1 / 0.07,
        "loss.entail_weight": 0.2,
        "loss.compositional": True,
    },
}

# Fine-tuning presets (``clipspace finetune re|ec``): overrides applied on top of a model's config.
_FINETUNE_RECIPE: dict[str, Any] = {  # the paper's optimisation, shared by both presets
    "finetune.lambda_p": 10.0,
    "optim.lr": 1e-7,
    "optim.weight_decay": 0.0,
    "optim.warmup_steps": 0,
    "optim.schedule": "constant",
    "data.batch_size": 8,
    "finetune.epochs": 1,
}
FINETUNE_PRESETS: dict[str, dict[str, Any]] = {
    "re": {
        **_FINETUNE_RECIPE,
        "finetune.method": "re",
        "finetune.lambda_e": 1.0,
        "finetune.lambda_m": 1.0,
    },
    "ec": {**_FINETUNE_RECIPE, "finetune.method": "ec"},
}


# --- named model shapes -------------------------------------------------------------------------

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


def normalise_model_name(name: str) -> str:
    """'ViT-B/16' and 'vit_b_16' both mean 'vit-b-16'."""
    return name.strip().lower().replace("/", "-").replace("_", "-")


def named_overrides(name: str) -> dict[str, Any] | None:
    """Dotted overrides of a named shape (``{"model.embed_dim": 128, "model.image.width": ...}``);
    None for ``custom`` or an unknown name (the caller reports it)."""
    spec = NAMED_MODELS.get(normalise_model_name(name))
    if spec is None:
        return None
    out: dict[str, Any] = {"model.embed_dim": spec["embed_dim"]}
    for tower in ("image", "text"):
        out.update({f"model.{tower}.{k}": v for k, v in spec[tower].items()})
    return out
