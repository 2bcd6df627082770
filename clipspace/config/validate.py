"""``validate(cfg)``: names checked against the registries that own them, then combinations.

Registries own their names: geometries (``clipspace.geometry.GEOMETRIES``), point maps
(``geometry.scalars.EMBED_SCALES``), logit kinds and contrastive losses (``clipspace.losses``),
fine-tuning methods (``presets.FINETUNE_PRESETS``). Tower kinds are checked by the model factory
against its tower registry when the model is built. ``CONFIG_CHOICES`` lists the options that
belong to the config itself. Every message names the key.
"""

from __future__ import annotations

from typing import Any

from clipspace.config.presets import FINETUNE_PRESETS
from clipspace.config.schema import Config, ConfigError
from clipspace.geometry import GEOMETRIES, get_geometry
from clipspace.geometry.scalars import EMBED_SCALES
from clipspace.losses import CONTRASTIVE_KINDS, LOGIT_KINDS, check_terms
from clipspace.tree import get_dotted

#: options owned by the config (no registry elsewhere); data.main_object is a MAD slot name
CONFIG_CHOICES: dict[str, tuple[str, ...]] = {
    "model.image.pos_embed": ("sincos", "learned"),
    "model.image.pool": ("cls", "mean"),
    "model.image.norm": ("group", "batch"),
    "data.main_object": ("", "stroke", "swelling", "fracture", "scale", "colour"),
    "optim.schedule": ("cosine", "constant"),
    "run.device": ("auto", "cpu", "cuda"),
    "run.precision": ("auto", "fp32", "bf16"),
}


def choices() -> dict[str, tuple[str, ...]]:
    """Every key with a closed set of values, and the values (registries first)."""
    return {
        "geometry.name": tuple(GEOMETRIES),
        "geometry.embed_scale": tuple(EMBED_SCALES),
        "loss.contrastive": tuple(CONTRASTIVE_KINDS),
        "loss.logit": tuple(LOGIT_KINDS),
        "finetune.method": tuple(FINETUNE_PRESETS),
        **CONFIG_CHOICES,
    }


def _check_names(cfg: Config) -> None:
    for key, allowed in choices().items():
        value = get_dotted(cfg, key)
        if value not in allowed:
            raise ConfigError(
                f"config key {key!r}: {value!r} is not allowed; allowed: "
                + ", ".join(repr(c) for c in allowed)
            )


def _check_ranges(cfg: Config) -> None:
    g = cfg.geometry
    if g.curv <= 0:
        raise ConfigError("config key 'geometry.curv' must be > 0")
    if not (0 < g.curv_min <= g.curv <= g.curv_max):
        raise ConfigError(
            "config keys 'geometry.curv_min' <= 'geometry.curv' <= 'geometry.curv_max' must hold"
            f" with curv_min > 0 (got {g.curv_min}, {g.curv}, {g.curv_max})"
        )
    for key in ("optim.lr", "loss.logit_scale", "loss.max_logit_scale"):
        if get_dotted(cfg, key) <= 0:
            raise ConfigError(f"config key {key!r} must be > 0")
    for key in ("optim.steps", "optim.accum_steps", "data.batch_size", "model.embed_dim",
                "finetune.epochs"):
        if get_dotted(cfg, key) < 1:
            raise ConfigError(f"config key {key!r} must be >= 1")
    if cfg.model.image.stem_stride not in (1, 2):
        raise ConfigError("config key 'model.image.stem_stride' must be 1 or 2")
    if not 0 <= cfg.data.num_attrs <= 5:
        raise ConfigError("config key 'data.num_attrs' must be in 0..5")
    if cfg.data.batch_size % cfg.optim.accum_steps:
        raise ConfigError("config key 'data.batch_size' must be divisible by 'optim.accum_steps'")


def validate(cfg: Config) -> None:
    """Reject unknown names, bad ranges and impossible combinations before any work starts."""
    _check_names(cfg)
    _check_ranges(cfg)
    loss: Any = cfg.loss
    try:  # the one rule for which loss terms a geometry supports lives with the losses
        check_terms(get_geometry(cfg.geometry.name), loss.contrastive, loss.entail_weight,
                    loss.centroid_weight)
    except ValueError as err:
        raise ConfigError(f"config key 'geometry.name' = {cfg.geometry.name!r}: {err}") from None


__all__ = ["CONFIG_CHOICES", "choices", "validate"]
