"""``create_model`` and ``load_model_and_tokenizer``: a ClipModel from a Config, a preset name,
a clipspace run/checkpoint, or any format with a registered loader.

Checkpoints follow ``clipspace.checkpoint`` (the one format, written by training and
fine-tuning alike). Other formats plug in through ``register_pretrained_loader(matcher,
loader)``; transformers CLIP (``models.hf_clip``) and SigLIP / SigLIP 2 (``models.hf_siglip``)
directories are registered here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clipspace import checkpoint as ckpt
from clipspace.config import (
    PRESETS,
    Config,
    ConfigError,
    apply_overrides,
    load,
    resolve,
    save,
    validate,
)
from clipspace.data.tokenizer import get_tokenizer
from clipspace.errors import ClipspaceError
from clipspace.io import atomic_dir
from clipspace.models import hf_clip, hf_siglip
from clipspace.models.adapt import adapt_model, has_lora, merge_lora
from clipspace.models.clip_model import DEFAULT_EOT_ID, DEFAULT_PAD_ID, ClipModel

_UNSET: Any = object()

#: loader(path) -> ClipModel, for paths where matcher(path) is true
PretrainedLoader = Callable[[Path], ClipModel]
#: (matcher, loader) pairs tried in order before the clipspace format
PRETRAINED_LOADERS: list[tuple[Callable[[Path], bool], PretrainedLoader]] = []


def register_pretrained_loader(matcher: Callable[[Path], bool], loader: PretrainedLoader) -> None:
    """Let another format handle ``pretrained`` paths for which ``matcher(path)`` is true;
    tried before the clipspace format, newest first."""
    PRETRAINED_LOADERS.insert(0, (matcher, loader))


register_pretrained_loader(lambda p: hf_clip.find_hf_base(p) is not None, hf_clip.load_hf_clip)
register_pretrained_loader(hf_siglip.is_siglip_path, hf_siglip.load_hf_siglip)


# --- configs ------------------------------------------------------------------------------------


def _dotted(overrides: dict[str, Any]) -> dict[str, Any]:
    return {k.replace("__", "."): v for k, v in overrides.items()}


def config_from(config: Config | str | Path | None, overrides: dict[str, Any]) -> Config:
    """A validated Config from a Config, a preset name, a config.json / .toml path or None
    (the clip preset), with dotted ``overrides`` applied on top."""
    over = _dotted(overrides)
    if config is None:
        return resolve("clip", over)
    if isinstance(config, Config):
        cfg = apply_overrides(copy.deepcopy(config), over)
        validate(cfg)
        return cfg
    if isinstance(config, (str, Path)):
        text = str(config)
        if text.endswith(".json") and Path(text).is_file():
            cfg = apply_overrides(load(text), over)
            validate(cfg)
            return cfg
        if text.endswith(".toml") and Path(text).is_file():
            return resolve("clip", over, text)
        return resolve(text, over)
    raise ConfigError(
        f"create_model: config must be a Config, a preset name or None, got {config!r}"
    )


def _pooling_ids(meta: dict[str, str], eot_id: Any, pad_id: Any) -> tuple[int | None, int]:
    """Text pooling ids: explicit arguments, else the weights' metadata, else MAD's (2, 0)."""
    if eot_id is _UNSET:
        raw = meta.get("eot_id", str(DEFAULT_EOT_ID))
        eot_id = int(raw) if raw else None
    if pad_id is _UNSET:
        pad_id = int(meta.get("pad_id", DEFAULT_PAD_ID))
    return eot_id, pad_id


# --- create_model ---------------------------------------------------------------------------------


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
        pretrained: a clipspace run dir / step dir / ``.safetensors`` file, or a directory of a
            registered format (transformers CLIP). Falls back to ``config.model.pretrained``.
        eot_id, pad_id: text pooling ids (default: from the checkpoint metadata, else 2 and 0,
            the MAD tokenizer's; see ``ClipModel``).
        **overrides: dotted config keys, e.g. ``**{"model.name": "mad-vit"}`` or
            ``model__name="mad-vit"``.
    """
    if not pretrained and isinstance(config, Config) and config.model.pretrained:
        pretrained = config.model.pretrained
    if not pretrained:
        cfg = config_from(config, overrides)
        if cfg.adapt.base:
            return adapted_model(cfg)
        e, p = _pooling_ids({}, eot_id, pad_id)
        return ClipModel(cfg, eot_id=e, pad_id=p)
    path = Path(pretrained).expanduser()
    for matcher, loader in PRETRAINED_LOADERS:
        if matcher(path):
            return loader(path)
    files = ckpt.find_weights(path)
    if config is None:
        if files.config is None:
            raise ClipspaceError(
                f"no {ckpt.CONFIG_NAME} next to {files.weights} or in its parents: pass a config"
            )
        cfg = config_from(files.config.as_posix(), overrides)
    else:
        cfg = config_from(config, overrides)
    if cfg.adapt.base:  # a base moved into a geometry: the base, then this run's part of it
        folder = files.config.parent if files.config is not None else files.weights.parent
        model = adapted_model(cfg, relative_to=folder)
    else:
        e, p = _pooling_ids(ckpt.read_metadata(files.weights), eot_id, pad_id)
        model = ClipModel(cfg, eot_id=e, pad_id=p)
    ckpt.load_weights(model, files.weights)
    model.config.model.pretrained = str(files.weights)
    return model


def load_model_and_tokenizer(source: str | Path) -> tuple[ClipModel, Any]:
    """A model and the tokenizer it was trained with: a clipspace run / checkpoint (its
    ``tokenizer.json``, next to it or up to three parents up) or a transformers directory (its
    own tokenizer). A preset name gives an untrained model and no tokenizer."""
    src = Path(source).expanduser()
    if not src.exists():
        if str(source) in PRESETS:
            return create_model(str(source)), None
        raise ClipspaceError(f"{source}: no such run, checkpoint, model directory or preset")
    model = create_model(pretrained=str(src))
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        path = ckpt.find_near(src, ckpt.TOKENIZER_NAME)
        tok = None if path is None else get_tokenizer(path, context_length=model.context_length)
    return model, tok


# --- a pretrained model moved into another geometry (models.adapt) -----------------------------


def base_path(cfg: Config, relative_to: Path | None = None) -> Path:
    """``adapt.base`` as a path; a relative one is taken from ``relative_to`` (the folder of
    the config.json that names it: an export keeps its base beside it) when given."""
    path = Path(cfg.adapt.base).expanduser()
    if not path.is_absolute() and relative_to is not None:
        path = relative_to / path
    return path


def adapted_model(cfg: Config, relative_to: Path | None = None) -> ClipModel:
    """The base of ``cfg.adapt.base`` (with its tokenizer) in ``cfg``'s geometry, with
    ``cfg.adapt``'s adapters or unlocked towers (``models.adapt.adapt_model``)."""
    path = base_path(cfg, relative_to)
    if not path.exists():
        raise ClipspaceError(f"config key 'adapt.base': the base model {str(path)!r} is gone; "
                             "an adapted run stores only its own part (merge it with "
                             "`clipspace export RUN --merge` to keep a stand-alone copy)")
    base, tokenizer = load_model_and_tokenizer(path)
    if has_lora(base):
        raise ConfigError(f"config key 'adapt.base' = {str(path)!r} still has LoRA adapters: "
                          "merge them first (clipspace export RUN --merge --out DIR)")
    model = adapt_model(base, cfg)
    if getattr(model, "tokenizer", None) is None:
        model.tokenizer = tokenizer
    return model


def with_base_model_section(cfg: Config) -> Config:
    """``cfg`` with the base's model section and the base as an absolute path: the config an
    adaptation run saves describes the model it trains (its towers are the base's)."""
    out = copy.deepcopy(cfg)
    path = base_path(cfg).resolve()
    if not path.exists():
        raise ConfigError(f"config key 'adapt.base': {str(path)!r} does not exist")
    out.model = copy.deepcopy(create_model(pretrained=str(path)).config.model)
    out.model.pretrained = ""
    out.adapt.base = str(path)
    return out


# --- saving ---------------------------------------------------------------------------------------


def save_weights(model: ClipModel, path: str | Path) -> Path:
    """``model``'s weights as safetensors with its metadata (``checkpoint.write_weights``)."""
    return ckpt.write_weights(model, path)


def save_pretrained(model: ClipModel, directory: str | Path) -> Path:
    """``directory/model.safetensors`` + ``directory/config.json`` (the expanded config)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ckpt.write_weights(model, directory / ckpt.WEIGHTS_NAME)
    save(model.config, directory / ckpt.CONFIG_NAME)
    return directory


#: where a merged export keeps a transformers base, relative to its config.json
MERGED_HF = "hf"


def export_merged(source: str | Path, out_dir: str | Path, overwrite: bool = False) -> Path:
    """A stand-alone copy of an adapted run (``clipspace export RUN --merge --out DIR``): the
    LoRA adapters folded into their layers (``models.adapt.merge_lora``), written atomically.

    * clipspace towers: ``model.safetensors`` (every weight), ``config.json`` (no base) and
      ``tokenizer.json``: a plain clipspace model in the new geometry;
    * transformers towers: ``DIR/hf``, a transformers directory with the merged towers and
      projections (tokenizer and preprocessor files copied) that transformers loads by itself
      (a faithful CLIP for sphere presets; for the other geometries it holds the towers only),
      plus ``config.json`` naming ``hf`` as its base and ``model.safetensors`` with the rest
      (projections, geometry parameters), which ``create_model(pretrained=DIR)`` reads back.
    """
    model, tokenizer = load_model_and_tokenizer(source)
    if not model.config.adapt.base:
        raise ClipspaceError(f"{source}: not an adapted run (its config has no adapt.base); "
                             "--merge is for `clipspace finetune geometry` runs")
    merge_lora(model)  # config.adapt.lora_r becomes 0
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise ClipspaceError(f"{out} already exists (pass --overwrite to replace it)")
    with atomic_dir(out, overwrite=overwrite) as tmp:
        if isinstance(model, hf_clip.HFModel):
            hf_clip.save_hf(model, tmp / MERGED_HF)
            model.config.adapt.base = MERGED_HF
            model.config.adapt.unlock, model.config.adapt.lock_layers = "", 0
        else:
            model.config.adapt.base = ""
            if tokenizer is not None:
                tokenizer.save(tmp / ckpt.TOKENIZER_NAME)
        save_pretrained(model, tmp)
    return out


def describe(model: ClipModel) -> dict[str, Any]:
    """Small JSON-able summary: parameter counts per tower and the geometry."""
    def count(module: Any) -> int:
        return sum(p.numel() for p in module.parameters())

    return {
        "model": model.config.model.name,
        "geometry": model.config.geometry.name,
        "params_image": count(model.visual) + count(model.image_proj),
        "params_text": count(model.text) + count(model.text_proj),
        "params_total": count(model),
    }


__all__ = [
    "PRETRAINED_LOADERS",
    "adapted_model",
    "base_path",
    "config_from",
    "create_model",
    "describe",
    "export_merged",
    "load_model_and_tokenizer",
    "register_pretrained_loader",
    "save_pretrained",
    "save_weights",
    "with_base_model_section",
]
