"""``validate(cfg)``: names checked against the registries that own them, ranges, then combinations.

Registries own their names: geometries (``clipspace.geometry.GEOMETRIES``), point maps
(``geometry.scalars.EMBED_SCALES``), logit kinds and contrastive losses (``clipspace.losses``),
fine-tuning methods (``presets.FINETUNE_PRESETS``). Tower kinds are checked by the model factory
against its tower registry when the model is built. ``CONFIG_CHOICES`` lists the options that
belong to the config itself; ``RANGES`` declares, once per key, the range of every numeric key
(checked before anything runs; infinities are never in range). Every message names the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from clipspace.config.presets import FINETUNE_PRESETS
from clipspace.config.schema import Config, ConfigError
from clipspace.geometry import GEOMETRIES, get_geometry
from clipspace.geometry.scalars import EMBED_SCALES
from clipspace.losses import (
    CONTRASTIVE_KINDS,
    LOGIT_KINDS,
    SIGLIP_EXCHANGES,
    check_exchange,
    check_terms,
)
from clipspace.tree import get_dotted

#: options owned by the config (no registry elsewhere); data.main_object is a MAD slot name
CONFIG_CHOICES: dict[str, tuple[str, ...]] = {
    "model.image.pos_embed": ("sincos", "learned"),
    "model.image.pool": ("cls", "mean"),
    "model.image.norm": ("group", "batch"),
    "data.main_object": ("", "stroke", "swelling", "fracture", "scale", "colour"),
    "data.caption_unit": ("word", "sentence"),
    "data.caption_span": ("scattered", "contiguous"),
    "optim.schedule": ("cosine", "constant"),
    "run.device": ("auto", "cpu", "cuda"),
    "run.precision": ("auto", "fp32", "bf16"),
    "run.parallel": ("ddp", "fsdp"),
    "adapt.unlock": ("", "image", "text", "both"),
}


def choices() -> dict[str, tuple[str, ...]]:
    """Every key with a closed set of values, and the values (registries first)."""
    return {
        "geometry.name": tuple(GEOMETRIES),
        "geometry.embed_scale": tuple(EMBED_SCALES),
        "loss.contrastive": tuple(CONTRASTIVE_KINDS),
        "loss.logit": tuple(LOGIT_KINDS),
        "loss.siglip_exchange": tuple(SIGLIP_EXCHANGES),
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


@dataclass(frozen=True)
class Range:
    """Allowed values of one numeric key: finite, between ``lo`` and ``hi`` (each bound
    included unless marked open)."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def describe(self, integer: bool) -> str:
        """``> 0``, ``>= 1``, ``in 0..5`` (integers), ``in [0, 1)``, ``a finite number``."""
        lo, hi = f"{self.lo:g}", f"{self.hi:g}"
        if math.isinf(self.lo) and math.isinf(self.hi):
            return "a finite number"
        if math.isinf(self.hi):
            return f"{'>' if self.lo_open else '>='} {lo}"
        if math.isinf(self.lo):
            return f"{'<' if self.hi_open else '<='} {hi}"
        if integer and not (self.lo_open or self.hi_open):
            return f"in {lo}..{hi}"
        return f"in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"


ANY = Range()
POSITIVE = Range(0.0, lo_open=True)
NON_NEGATIVE = Range(0.0)
AT_LEAST_ONE = Range(1.0)
FRACTION = Range(0.0, 1.0)
BETA = Range(0.0, 1.0, hi_open=True)

#: the one declaration of each numeric key's range (``validate`` checks every one; a test
#: checks that every int / float field of the schema is here)
RANGES: dict[str, Range] = {
    "geometry.curv": POSITIVE,
    "geometry.curv_min": POSITIVE,
    "geometry.curv_max": POSITIVE,
    "loss.logit_scale": POSITIVE,
    "loss.max_logit_scale": POSITIVE,
    "loss.siglip_bias": ANY,
    "loss.entail_weight": NON_NEGATIVE,
    "loss.entail_min_radius": NON_NEGATIVE,
    "loss.centroid_weight": NON_NEGATIVE,
    "loss.centroid_p": NON_NEGATIVE,
    "loss.centroid_q": NON_NEGATIVE,
    "loss.chunk_size": NON_NEGATIVE,  # 0 = unchunked
    "loss.eta_inter": POSITIVE,
    "loss.eta_intra": POSITIVE,
    "loss.calibration_weight": NON_NEGATIVE,
    "model.embed_dim": AT_LEAST_ONE,
    **{f"model.{tower}.{key}": AT_LEAST_ONE for tower in ("image", "text")
       for key in ("width", "heads")},
    **{f"model.{tower}.depth": NON_NEGATIVE for tower in ("image", "text")},
    **{f"model.{tower}.mlp_ratio": POSITIVE for tower in ("image", "text")},
    "model.image.image_size": AT_LEAST_ONE,
    "model.image.in_channels": AT_LEAST_ONE,
    "model.image.patch_size": AT_LEAST_ONE,
    "model.image.stem_stride": Range(1, 2),
    "model.text.vocab_size": AT_LEAST_ONE,
    "model.text.context_length": AT_LEAST_ONE,
    "model.init_text_shift": NON_NEGATIVE,
    "data.num_attrs": Range(0, 5),
    "data.max_samples": NON_NEGATIVE,
    "data.caption_fraction": Range(0.0, 1.0, lo_open=True),
    "data.image_size": NON_NEGATIVE,
    "data.max_bad_fraction": FRACTION,
    "data.workers": NON_NEGATIVE,
    "data.batch_size": AT_LEAST_ONE,
    "data.epoch_samples": NON_NEGATIVE,
    "optim.lr": POSITIVE,
    "optim.beta1": BETA,
    "optim.beta2": BETA,
    "optim.eps": POSITIVE,
    "optim.weight_decay": NON_NEGATIVE,
    "optim.warmup_steps": NON_NEGATIVE,
    "optim.steps": AT_LEAST_ONE,
    "optim.min_lr_ratio": FRACTION,
    "optim.grad_clip": NON_NEGATIVE,  # 0 = no clipping
    "optim.accum_steps": AT_LEAST_ONE,
    "run.seed": ANY,
    "run.threads": NON_NEGATIVE,
    "run.log_every": NON_NEGATIVE,
    "run.eval_every": NON_NEGATIVE,
    "run.eval_samples": NON_NEGATIVE,
    "run.analysis_every": NON_NEGATIVE,
    "run.analysis_samples": Range(2.0),
    "run.save_every": NON_NEGATIVE,
    "run.keep_last": NON_NEGATIVE,  # 0 = keep all
    "run.dist_timeout": POSITIVE,
    "finetune.lambda_p": NON_NEGATIVE,
    "finetune.lambda_e": NON_NEGATIVE,
    "finetune.lambda_m": NON_NEGATIVE,
    "finetune.ec_min_radius": NON_NEGATIVE,
    "finetune.ec_margin": NON_NEGATIVE,
    "finetune.epochs": AT_LEAST_ONE,
    "adapt.lora_r": NON_NEGATIVE,
    "adapt.lora_alpha": POSITIVE,
    "adapt.lora_dropout": BETA,
    "adapt.lock_layers": NON_NEGATIVE,
}


def _check_ranges(cfg: Config) -> None:
    for key, allowed in RANGES.items():
        value = get_dotted(cfg, key)
        if not allowed.contains(value):
            raise ConfigError(f"config key {key!r} must be "
                              f"{allowed.describe(isinstance(value, int))}, got {value!r}")


def _check_combinations(cfg: Config) -> None:
    g = cfg.geometry
    if not (g.curv_min <= g.curv <= g.curv_max):
        raise ConfigError(
            "config keys 'geometry.curv_min' <= 'geometry.curv' <= 'geometry.curv_max' must hold"
            f" with curv_min > 0 (got {g.curv_min}, {g.curv}, {g.curv_max})"
        )
    if cfg.loss.compositional and cfg.loss.contrastive != "infonce":
        raise ConfigError("config key 'loss.compositional' needs 'loss.contrastive' = 'infonce' "
                          f"(HyCoCLIP's cross-entropies), not {cfg.loss.contrastive!r}")
    if cfg.loss.compositional and cfg.optim.accum_steps > 1:
        raise ConfigError("config keys 'loss.compositional' and 'optim.accum_steps' > 1: the "
                          "gradient cache holds no boxes; use optim.accum_steps = 1")
    if cfg.data.batch_size % cfg.optim.accum_steps:
        raise ConfigError("config key 'data.batch_size' must be divisible by 'optim.accum_steps'")
    if cfg.data.caption_fraction < 1.0 and str(cfg.data.train).startswith("mad:"):
        raise ConfigError(
            f"config key 'data.caption_fraction' ({cfg.data.caption_fraction}) < 1 with MAD "
            f"training data ({cfg.data.train!r}): MAD captions are cut by attribute count, set "
            "'data.num_attrs' (0..5) instead")


def validate(cfg: Config) -> None:
    """Reject unknown names, bad ranges and impossible combinations before any work starts."""
    _check_names(cfg)
    _check_ranges(cfg)
    _check_combinations(cfg)
    loss: Any = cfg.loss
    try:  # the one rule for which loss terms a geometry supports lives with the losses
        check_terms(get_geometry(cfg.geometry.name), loss.contrastive, loss.entail_weight,
                    loss.centroid_weight)
    except ValueError as err:
        raise ConfigError(f"config key 'geometry.name' = {cfg.geometry.name!r}: {err}") from None
    try:
        check_exchange(loss.siglip_exchange, loss.contrastive, loss.gather_with_grad)
    except ValueError as err:
        raise ConfigError(f"config key {err}") from None


__all__ = ["CONFIG_CHOICES", "RANGES", "Range", "choices", "validate"]
