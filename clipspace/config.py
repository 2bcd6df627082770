"""One typed config tree for every clipspace run.

A preset is data: a dict of dotted overrides applied to the defaults (see ``PRESETS``). Overrides
come, in order, from the preset, a TOML file (``--config run.toml``) and the command line
(``--set optim.lr=1e-3``). ``resolve`` validates the result and names the offending key on error.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

if sys.version_info >= (3, 11):  # noqa: UP036
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


from clipspace.errors import ClipspaceError


class ConfigError(ClipspaceError):
    """A bad key, value or combination in a config; the message names the key."""


@dataclass
class GeometryConfig:
    """Embedding space. ``curv`` is c in the Lorentz model of curvature -c (ignored elsewhere)."""

    name: str = "sphere"  # sphere | euclidean | lorentz
    curv: float = 1.0
    learn_curv: bool = True
    curv_min: float = 0.1
    curv_max: float = 10.0
    # How encoder features become points before the geometry's exp_map0:
    # none (sphere: exp_map0 = L2 normalise) | sqrt_dim (x / sqrt(D)) | alpha (learnable, <= 1)
    embed_scale: str = "none"
    learn_alpha: bool = True


@dataclass
class LossConfig:
    """Training objective: a contrastive term plus optional entailment / centroid terms."""

    contrastive: str = "infonce"  # infonce | siglip | angle | none
    logit: str = "cosine"  # cosine | dot | inner | neg_dist | neg_sqdist
    logit_scale: float = 1 / 0.07
    learn_logit_scale: bool = True
    max_logit_scale: float = 100.0
    siglip_bias: float = -10.0
    entail_weight: float = 0.0
    entail_min_radius: float = 0.1
    centroid_weight: float = 0.0
    centroid_p: float = 2.0
    centroid_q: float = 0.5
    local_loss: bool = False
    gather_with_grad: bool = True


@dataclass
class ImageTowerConfig:
    kind: str = "convnet"  # convnet | vit
    image_size: int = 28
    in_channels: int = 3
    width: int = 64
    depth: int = 3
    heads: int = 2
    patch_size: int = 4
    mlp_ratio: float = 4.0
    pos_embed: str = "sincos"  # sincos | learned
    pool: str = "cls"  # cls | mean
    final_ln: bool = True
    stem_stride: int = 2  # convnet: stride of the first conv (1 keeps full resolution)
    norm: str = "group"  # convnet: group | batch (batch: per-rank statistics under DDP)


@dataclass
class TextTowerConfig:
    vocab_size: int = 1000
    context_length: int = 16
    width: int = 128
    depth: int = 2
    heads: int = 2
    mlp_ratio: float = 4.0
    final_ln: bool = True


@dataclass
class ModelConfig:
    """Towers. ``name`` picks a named config (models/configs.py); ``custom`` uses the fields."""

    name: str = "mad-tiny"
    embed_dim: int = 128
    image: ImageTowerConfig = field(default_factory=ImageTowerConfig)
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    pretrained: str = ""


@dataclass
class DataConfig:
    """Where samples come from: ``mad:DIR``, ``csv:FILE``, ``wds:PATTERN``, ``hierarcaps:FILE``."""

    train: str = "mad:data/mad"
    val: str = ""
    # MAD captions: digit plus ``num_attrs`` of the 5 attribute slots (the imbalance knob)
    num_attrs: int = 5
    main_object: str = ""  # "" | stroke | swelling | fracture | scale | colour
    objects_only: bool = False
    redraw_per_epoch: bool = False
    max_samples: int = 0  # 0 = all
    image_size: int = 0  # 0 = the tower's image size
    tokenizer: str = ""  # path to tokenizer.json; "" = the dataset's own
    csv_sep: str = "\t"
    csv_img_key: str = "filepath"
    csv_caption_key: str = "title"
    image_root: str = ""
    max_bad_fraction: float = 0.01
    workers: int = 0
    batch_size: int = 256
    epoch_samples: int = 0  # webdataset epoch length (0 = one pass)
    resampled: bool = False


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay (REFERENCE.md section 2)."""

    lr: float = 5e-4
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    weight_decay: float = 0.2
    warmup_steps: int = 50
    steps: int = 1000
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    accum_steps: int = 1


@dataclass
class RunConfig:
    """Run bookkeeping: where outputs go, precision, logging, checkpoints."""

    output_dir: str = "runs"
    name: str = ""
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
    compile: bool = False
    threads: int = 0
    log_every: int = 10
    eval_every: int = 0
    save_every: int = 0  # 0 = only at the end
    keep_last: int = 2
    tensorboard: bool = True
    progress: bool = True


@dataclass
class FinetuneConfig:
    """Text-tower fine-tuning of a pretrained CLIP (REFERENCE.md section 3)."""

    method: str = "re"  # re (Radial Embedding) | ec (entailment-cone baseline)
    lambda_p: float = 10.0
    lambda_e: float = 1.0
    lambda_m: float = 1.0
    ec_min_radius: float = 0.1  # K of the EC baseline's aperture asin(K / |e - r|)
    ec_margin: float = 0.1  # negatives pushed out by this angle
    epochs: int = 1


@dataclass
class Config:
    preset: str = "clip"
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)


# --- presets: data, not code paths -------------------------------------------------------------

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
    "meru": {
        "geometry.name": "lorentz",
        "geometry.embed_scale": "alpha",
        "geometry.curv": 1.0,
        "geometry.learn_curv": True,
        "loss.contrastive": "infonce",
        "loss.logit": "neg_dist",
        "loss.logit_scale": 1 / 0.07,
        "loss.entail_weight": 0.2,
    },
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

CHOICES: dict[str, tuple[str, ...]] = {
    "geometry.name": ("sphere", "euclidean", "lorentz"),
    "geometry.embed_scale": ("none", "sqrt_dim", "alpha"),
    "loss.contrastive": ("infonce", "siglip", "angle", "none"),
    "loss.logit": ("cosine", "dot", "inner", "neg_dist", "neg_sqdist"),
    "model.image.kind": ("convnet", "vit"),
    "model.image.pos_embed": ("sincos", "learned"),
    "model.image.pool": ("cls", "mean"),
    "data.main_object": ("", "stroke", "swelling", "fracture", "scale", "colour"),
    "optim.schedule": ("cosine", "constant"),
    "run.device": ("auto", "cpu", "cuda"),
    "run.precision": ("auto", "fp32", "bf16"),
    "finetune.method": ("re", "ec"),
}


# --- overrides -----------------------------------------------------------------------------------


def _walk(cfg: Any, dotted: str) -> tuple[Any, str, Any]:
    """Return (parent dataclass, leaf name, leaf type) for a dotted key, or raise ConfigError."""
    parts = dotted.split(".")
    node = cfg
    for i, part in enumerate(parts):
        names = [f.name for f in fields(node)]
        if part not in names:
            where = ".".join(parts[:i]) or "<root>"
            raise ConfigError(
                f"unknown config key {dotted!r}: {where} has no field {part!r}; "
                f"allowed: {', '.join(names)}"
            )
        hints = get_type_hints(type(node))
        if i == len(parts) - 1:
            return node, part, hints[part]
        node = getattr(node, part)
        if not is_dataclass(node):
            raise ConfigError(f"config key {dotted!r}: {'.'.join(parts[: i + 1])} is not a section")
    raise ConfigError(f"empty config key {dotted!r}")  # pragma: no cover


def _coerce(key: str, value: Any, typ: Any) -> Any:
    """Convert ``value`` (a string from the CLI or a TOML value) to ``typ``, or raise."""
    origin = get_origin(typ)
    if origin is not None and type(None) in get_args(typ):  # Optional[...]
        typ = next(a for a in get_args(typ) if a is not type(None))
    if is_dataclass(typ):
        raise ConfigError(f"config key {key!r} is a section; set one of its fields")
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            if isinstance(value, str) and "e" in value.lower():
                return int(float(value))
            return int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            out = float(value)
            if math.isnan(out):
                raise ValueError
            return out
        if typ is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        name = getattr(typ, "__name__", str(typ))
        raise ConfigError(f"config key {key!r}: expected {name}, got {value!r}") from None
    return value


def set_value(cfg: Config, dotted: str, value: Any) -> None:
    """Set one dotted key with type checking (``set_value(cfg, "optim.lr", "1e-3")``)."""
    parent, leaf, typ = _walk(cfg, dotted)
    out = _coerce(dotted, value, typ)
    if dotted in CHOICES and out not in CHOICES[dotted]:
        raise ConfigError(
            f"config key {dotted!r}: {out!r} is not allowed; allowed: "
            + ", ".join(repr(c) for c in CHOICES[dotted])
        )
    setattr(parent, leaf, out)


def parse_set(items: list[str]) -> dict[str, str]:
    """Parse ``["a.b=1", ...]`` into a dict; an item without '=' is an error naming it."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested dict (e.g. parsed TOML) into dotted keys."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into dotted overrides; a syntax error names the file and line."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            tree = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: {err}") from None
    return flatten(tree)


def validate(cfg: Config) -> None:
    """Reject impossible combinations before any work starts; messages name the keys."""
    for key, allowed in CHOICES.items():
        parent, leaf, _ = _walk(cfg, key)
        if getattr(parent, leaf) not in allowed:
            raise ConfigError(f"config key {key!r}: {getattr(parent, leaf)!r} not in {allowed}")
    g, loss = cfg.geometry, cfg.loss
    if g.curv <= 0:
        raise ConfigError("config key 'geometry.curv' must be > 0")
    if not (0 < g.curv_min <= g.curv <= g.curv_max):
        raise ConfigError(
            "config keys 'geometry.curv_min' <= 'geometry.curv' <= 'geometry.curv_max' must hold"
            f" with curv_min > 0 (got {g.curv_min}, {g.curv}, {g.curv_max})"
        )
    if g.name == "sphere" and (loss.entail_weight > 0 or loss.contrastive == "angle"):
        raise ConfigError(
            "config keys 'loss.entail_weight'/'loss.contrastive=angle' need an origin: use "
            "geometry.name euclidean or lorentz (the sphere has no [ROOT] on the manifold)"
        )
    if g.name == "sphere" and loss.centroid_weight > 0:
        raise ConfigError(
            "config key 'loss.centroid_weight' needs geometry.name euclidean or lorentz"
        )
    if loss.contrastive == "none" and loss.entail_weight <= 0 and loss.centroid_weight <= 0:
        raise ConfigError("config key 'loss.contrastive' is 'none' and no other loss term is on")
    for key in ("optim.lr", "loss.logit_scale", "loss.max_logit_scale"):
        parent, leaf, _ = _walk(cfg, key)
        if getattr(parent, leaf) <= 0:
            raise ConfigError(f"config key {key!r} must be > 0")
    for key in (
        "optim.steps", "optim.accum_steps", "data.batch_size", "model.embed_dim",
        "finetune.epochs",
    ):
        parent, leaf, _ = _walk(cfg, key)
        if getattr(parent, leaf) < 1:
            raise ConfigError(f"config key {key!r} must be >= 1")
    if cfg.model.image.stem_stride not in (1, 2):
        raise ConfigError("config key 'model.image.stem_stride' must be 1 or 2")
    if cfg.model.image.norm not in ("group", "batch"):
        raise ConfigError(
            f"config key 'model.image.norm': {cfg.model.image.norm!r}; allowed: group, batch"
        )
    if not 0 <= cfg.data.num_attrs <= 5:
        raise ConfigError("config key 'data.num_attrs' must be in 0..5")
    if cfg.data.batch_size % cfg.optim.accum_steps:
        raise ConfigError("config key 'data.batch_size' must be divisible by 'optim.accum_steps'")


def resolve(
    preset: str = "clip",
    overrides: dict[str, Any] | None = None,
    toml_path: str | Path | None = None,
) -> Config:
    """Build a validated Config: defaults <- preset <- TOML file <- explicit overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
    cfg = Config(preset=preset)
    merged: dict[str, Any] = dict(PRESETS[preset])
    if toml_path:
        merged.update(load_toml(toml_path))
    merged.update(overrides or {})
    if "preset" in merged:
        merged.pop("preset")
    for key, value in merged.items():
        set_value(cfg, key, value)
    validate(cfg)
    return cfg


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(tree: dict[str, Any]) -> Config:
    """Rebuild a Config from ``to_dict`` output (e.g. a saved ``config.json``)."""
    cfg = Config()
    for key, value in flatten(tree).items():
        set_value(cfg, key, value)
    return cfg


def save(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as JSON, atomically."""
    from clipspace.io import atomic_write_text

    atomic_write_text(Path(path), json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n")


def load(path: str | Path) -> Config:
    path = Path(path)
    try:
        tree = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read config {path}: {err}") from None
    return from_dict(tree)
