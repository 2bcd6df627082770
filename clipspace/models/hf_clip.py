"""Hugging Face CLIP checkpoints as clipspace models (optional extra ``hf``: ``transformers``).

A Hugging Face CLIP directory (``config.json`` with ``model_type: "clip"``, ``model.safetensors``
or ``pytorch_model.bin``, tokenizer files, ``preprocessor_config.json``, as
``CLIPModel.save_pretrained`` writes it) becomes an ``HFClipModel``: a ``ClipModel`` whose towers
and projections are transformers' own modules (``CLIPModel.vision_model`` / ``text_model`` /
``visual_projection`` / ``text_projection``), on the sphere with cosine logits and the
checkpoint's logit scale. So ``encode_image``/``encode_text`` equal transformers'
``get_image_features``/``get_text_features`` after L2 normalisation, and every evaluation and
analysis command works unchanged.

A fine-tuned copy (``clipspace finetune``) is a run directory holding ``hf_base/`` (the source
directory's config, tokenizer and preprocessor files, no weights) plus clipspace checkpoints
``checkpoints/step_N/model.safetensors`` of the whole ``HFClipModel``; ``create_model(pretrained=
RUN_OR_STEP_DIR)`` rebuilds it from ``hf_base`` and loads those weights. ``save_hf`` writes any
``HFModel`` (CLIP, SigLIP) back as a transformers-loadable directory.

The part every transformers family shares lives here too: ``HFModel`` (a ``ClipModel`` whose
towers are transformers modules, with ``source``, ``preprocess``, ``tokenizer``, ``to_hf``),
``load_hf_model`` (directory / fine-tuning run -> model), ``find_hf_base``, ``hf_preprocess``;
``models.hf_siglip`` builds SigLIP / SigLIP 2 on them. The tokenizer wrapper ``HFTokenizer``
lives in ``clipspace.data.hf_tokenizer`` (re-exported here).

``transformers`` is imported lazily (only when an HF directory is loaded).
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from clipspace.checkpoint import find_weights, load_weights
from clipspace.config import Config, resolve, set_value
from clipspace.data.hf_tokenizer import (
    HFTokenizer,
    has_tokenizer_files,
    import_transformers,
    load_hf_tokenizer,
    read_hf_config,
)
from clipspace.data.transforms import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    Compose,
    Normalize,
    ToRGB,
    ToTensor,
)
from clipspace.errors import ClipspaceError
from clipspace.io import atomic_dir
from clipspace.models.clip_model import ClipModel

HF_BASE = "hf_base"
HF_CONFIG = "config.json"
PREPROCESSOR = "preprocessor_config.json"
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
#: files copied into ``hf_base`` / next to exported weights (whichever exist)
SIDE_FILES = (
    HF_CONFIG, PREPROCESSOR, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.json", "merges.txt", "added_tokens.json", "processor_config.json", "spiece.model",
    "tokenizer.model",
)
#: model_type -> transformers class, for the directories this module loads
CLIP_CLASSES: dict[str, str] = {"clip": "CLIPModel"}


def _transformers() -> Any:
    return import_transformers()


# --- recognising directories --------------------------------------------------------------------


def hf_model_type(path: str | Path) -> str | None:
    """``model_type`` of ``path/config.json`` if it is a transformers config, else None."""
    data = read_hf_config(path)
    return None if data is None else str(data["model_type"])


def is_hf_clip_dir(path: str | Path) -> bool:
    """True if ``path/config.json`` is a transformers config with ``model_type == "clip"``."""
    return hf_model_type(path) in CLIP_CLASSES


def find_hf_base(
    path: str | Path, model_types: Collection[str] | None = tuple(CLIP_CLASSES)
) -> Path | None:
    """The HF directory behind ``path``: ``path`` itself if it is one, else ``hf_base/`` in
    ``path`` or one of its three parents (a fine-tuning run, step dir or weights file).

    ``model_types``: the ``config.json`` ``model_type`` values accepted (default CLIP's; None:
    any transformers config)."""

    def accepted(d: Path) -> bool:
        kind = hf_model_type(d)
        return kind is not None and (model_types is None or kind in model_types)

    p = Path(path).expanduser()
    if p.is_dir() and accepted(p):
        return p
    start = p if p.is_dir() else p.parent
    for parent in [start, *list(start.parents)[:3]]:
        if accepted(parent / HF_BASE):
            return parent / HF_BASE
    return None


def _has_hf_weights(path: Path) -> bool:
    return any((path / name).is_file() for name in HF_WEIGHTS)


# --- towers -------------------------------------------------------------------------------------


class HFTextTower(nn.Module):
    """A transformers text model: tokens (B, L) -> its ``pooler_output`` (B, output_dim).

    CLIP (``CLIPTextModel``): the end-token features (first ``config.eos_token_id``; the legacy
    id 2 means argmax), so padding after the end token never changes the output (causal
    attention). SigLIP (``SiglipTextModel`` / ``Siglip2TextModel``): ``head`` of the last
    position's features. Only ``input_ids`` are passed (no attention mask)."""

    def __init__(self, model: nn.Module, output_dim: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.output_dim = int(output_dim or model.config.hidden_size)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.model(input_ids=tokens).pooler_output


class HFVisionTower(nn.Module):
    """A transformers vision model: images (B, 3, H, W) -> its ``pooler_output`` (B, width):
    the post-LN class token (CLIP) or the attention-pooling head (SigLIP)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.output_dim = int(model.config.hidden_size)

    def forward(self, images: Tensor) -> Tensor:
        return self.model(pixel_values=images).pooler_output


# --- the model ----------------------------------------------------------------------------------


def hf_clipspace_config(
    text_config: Any,
    vision_config: Any,
    values: Mapping[str, Any],
    source: str = "",
) -> Config:
    """A clipspace ``Config`` describing a transformers dual encoder: the sphere (fixed
    curvature), ``model.name = "custom"`` with the HF tower sizes (vit image tower, learned
    positions), then ``values`` (dotted keys: ``model.embed_dim``, ``model.image.image_size``,
    ``loss.*``, ...) on top."""
    t, v = text_config, vision_config
    cfg = resolve("clip", {"geometry.learn_curv": False})
    base = {
        "model.name": "custom",
        "model.pretrained": source,
        "model.image.kind": "vit",
        "model.image.image_size": int(getattr(v, "image_size", 224)),
        "model.image.patch_size": int(v.patch_size),
        "model.image.width": int(v.hidden_size),
        "model.image.depth": int(v.num_hidden_layers),
        "model.image.heads": int(v.num_attention_heads),
        "model.image.in_channels": int(getattr(v, "num_channels", 3)),
        "model.image.pos_embed": "learned",
        "model.text.vocab_size": int(t.vocab_size),
        "model.text.context_length": int(t.max_position_embeddings),
        "model.text.width": int(t.hidden_size),
        "model.text.depth": int(t.num_hidden_layers),
        "model.text.heads": int(t.num_attention_heads),
    }
    for key, value in {**base, **values}.items():
        set_value(cfg, key, value)
    return cfg


def hf_config_to_clipspace(hf_config: Any, source: str = "") -> Config:
    """A clipspace ``Config`` describing an HF CLIP: sphere, cosine InfoNCE, the checkpoint's
    logit scale; ``model.*`` records the HF tower sizes (``model.name = "custom"``)."""
    scale = math.exp(float(getattr(hf_config, "logit_scale_init_value", math.log(1 / 0.07))))
    return hf_clipspace_config(hf_config.text_config, hf_config.vision_config, {
        "model.embed_dim": int(hf_config.projection_dim),
        "loss.logit_scale": scale,
        "loss.max_logit_scale": max(100.0, scale),
    }, source)


def _placeholder_config(cfg: Config) -> Config:
    """``cfg`` with tiny towers: ClipModel builds them and HFModel replaces them at once."""
    tiny = copy.deepcopy(cfg)
    for key, value in {
        "model.image.kind": "convnet", "model.image.width": 4, "model.image.depth": 1,
        "model.image.image_size": 8, "model.text.vocab_size": 8, "model.text.context_length": 4,
        "model.text.width": 4, "model.text.depth": 1, "model.text.heads": 1,
    }.items():
        set_value(tiny, key, value)
    return tiny


class HFModel(ClipModel):
    """A ``ClipModel`` whose towers and projections are a transformers model's own modules.

    ``cfg`` describes the model (``hf_clipspace_config``: sphere, the loss with the checkpoint's
    scalars); ``image_size``, ``context_length`` and ``embed_dim`` come from it. Attributes besides
    ClipModel's: ``hf_config`` (the transformers config), ``source`` (the HF directory),
    ``preprocess`` (image -> tensor following the checkpoint's preprocessor_config.json) and
    ``tokenizer`` (``HFTokenizer`` or None). Subclasses name their transformers class
    (``hf_class``) and the parts ``to_hf`` copies back (``hf_parts``, ``_export_scalars``).
    """

    #: the transformers class ``to_hf`` builds (a subclass or its instances set it)
    hf_class: str = ""

    def __init__(
        self,
        hf_model: nn.Module,
        cfg: Config,
        towers: tuple[nn.Module, nn.Module, nn.Module, nn.Module],
        source: str | Path = "",
        eot_id: int | None = None,
        pad_id: int = 0,
        preprocess: Callable[[Any], Tensor] | None = None,
        tokenizer: Any = None,
    ) -> None:
        """``towers``: (image tower, text tower, image projection, text projection)."""
        super().__init__(_placeholder_config(cfg), eot_id=eot_id, pad_id=pad_id)
        self.config = cfg
        self.hf_config = hf_model.config
        self.source = str(source)
        self.visual, self.text, self.image_proj, self.text_proj = towers
        self.image_size = int(cfg.model.image.image_size)
        self.context_length = int(cfg.model.text.context_length)
        self.embed_dim = int(cfg.model.embed_dim)
        self.preprocess = preprocess or hf_preprocess({}, self.image_size)
        self.tokenizer = tokenizer

    def hf_parts(self) -> dict[str, nn.Module]:
        """transformers attribute name -> this model's module holding those weights."""
        raise NotImplementedError

    def _export_scalars(self, out: nn.Module) -> None:
        """Copy the scalars (logit scale, bias) into the transformers model ``out``."""

    def to_hf(self) -> nn.Module:
        """A transformers model (``hf_class``) holding copies of this model's current weights."""
        out = getattr(_transformers(), self.hf_class)(copy.deepcopy(self.hf_config)).eval()
        for name, module in self.hf_parts().items():
            getattr(out, name).load_state_dict(module.state_dict())
        with torch.no_grad():
            self._export_scalars(out)
        return out


class HFClipModel(HFModel):
    """A ``ClipModel`` around a transformers ``CLIPModel`` (same API; sphere geometry; cosine
    InfoNCE with the checkpoint's logit scale). See ``HFModel`` for the attributes."""

    hf_class = "CLIPModel"

    def __init__(
        self,
        hf_model: nn.Module,
        source: str | Path = "",
        eot_id: int | None = None,
        pad_id: int = 0,
        preprocess: Callable[[Any], Tensor] | None = None,
        tokenizer: Any = None,
    ) -> None:
        towers = (HFVisionTower(hf_model.vision_model), HFTextTower(hf_model.text_model),
                  hf_model.visual_projection, hf_model.text_projection)
        cfg = hf_config_to_clipspace(hf_model.config, str(source))
        super().__init__(hf_model, cfg, towers, source, eot_id, pad_id, preprocess, tokenizer)
        with torch.no_grad():
            self.objective.logit_scale.log_value.copy_(hf_model.logit_scale.detach().float())

    def hf_parts(self) -> dict[str, nn.Module]:
        return {"text_model": self.text.model, "vision_model": self.visual.model,
                "text_projection": self.text_proj, "visual_projection": self.image_proj}

    def _export_scalars(self, out: nn.Module) -> None:
        out.logit_scale.copy_(self.objective.logit_scale.log_value.detach().float())


# --- preprocessing ------------------------------------------------------------------------------


class HFResize:
    """transformers' resize: shortest edge -> ``size`` with the long side ``int(size*long/short)``
    (truncated, as ``get_resize_output_image_size``), or exactly (h, w); PIL resampling."""

    def __init__(self, size: int | tuple[int, int], resample: int = 3) -> None:
        self.size, self.resample = size, int(resample)

    def __call__(self, image: Image.Image) -> Image.Image:
        w, h = image.size
        if isinstance(self.size, int):
            short, long = (w, h) if w <= h else (h, w)
            new_long = int(self.size * long / short)
            tw, th = (self.size, new_long) if w <= h else (new_long, self.size)
        else:
            th, tw = self.size
        if (tw, th) == (w, h):
            return image
        return image.resize((tw, th), Image.Resampling(self.resample))

    def __repr__(self) -> str:
        return f"HFResize({self.size}, resample={self.resample})"


class HFCenterCrop:
    """transformers' centre crop: top = (H - h) // 2, left = (W - w) // 2; zero pad if smaller."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size

    def __call__(self, image: Image.Image) -> Image.Image:
        th, tw = self.size
        w, h = image.size
        top, left = (h - th) // 2, (w - tw) // 2
        if top >= 0 and left >= 0:
            return image.crop((left, top, left + tw, top + th))
        canvas = Image.new(image.mode, (tw, th))
        canvas.paste(image, (-left, -top))
        return canvas

    def __repr__(self) -> str:
        return f"HFCenterCrop({self.size})"


def _hw(value: Any, default: int) -> tuple[int, int] | int:
    """preprocessor size entry -> int (shortest edge) or (h, w)."""
    if value is None:
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        if "shortest_edge" in value:
            return int(value["shortest_edge"])
        if "height" in value and "width" in value:
            return int(value["height"]), int(value["width"])
    raise ClipspaceError(f"{PREPROCESSOR}: unsupported size entry {value!r}")


def hf_preprocess(
    spec: Mapping[str, Any], image_size: int = 224, defaults: Mapping[str, Any] | None = None
) -> Callable[[Any], Tensor]:
    """Image -> float tensor (3, H, W) following a ``preprocessor_config.json`` dict: convert to
    RGB, resize (shortest edge, or exactly (h, w) for a ``{"height", "width"}`` size; bicubic by
    default), centre crop, x/255, (x - mean) / std, as transformers' PIL image processors do.

    ``defaults``: the image processor class's defaults for keys the file leaves out (the
    ``CLIPImageProcessor``'s when None: centre crop, OpenAI CLIP mean / std). Built from
    clipspace.data.transforms' ``Compose``/``ToRGB``/``ToTensor``/``Normalize`` plus
    transformers-exact resize/crop rounding (``HFResize``/``HFCenterCrop``)."""
    spec = {**(defaults or {}), **spec}
    steps: list[Callable[[Any], Any]] = [ToRGB()]
    if spec.get("do_resize", True):
        steps.append(HFResize(_hw(spec.get("size"), image_size), spec.get("resample", 3)))
    if spec.get("do_center_crop", True):
        crop = _hw(spec.get("crop_size"), image_size)
        steps.append(HFCenterCrop(crop if isinstance(crop, tuple) else (crop, crop)))
    steps.append(ToTensor())
    factor = float(spec.get("rescale_factor", 1 / 255)) if spec.get("do_rescale", True) else 1.0
    if abs(factor - 1 / 255) > 1e-12:
        steps.append(lambda x, k=factor * 255.0: x * k)
    if spec.get("do_normalize", True):
        steps.append(Normalize(spec.get("image_mean") or OPENAI_CLIP_MEAN,
                               spec.get("image_std") or OPENAI_CLIP_STD))
    return Compose(steps)


def read_preprocessor_config(directory: str | Path) -> dict[str, Any]:
    """``directory/preprocessor_config.json`` as a dict ({} if absent)."""
    path = Path(directory) / PREPROCESSOR
    if not path.is_file():
        return {}
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ClipspaceError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from None
    if not isinstance(spec, dict):
        raise ClipspaceError(f"{path}: not a JSON object")
    return spec


def read_preprocess(
    directory: str | Path, image_size: int = 224, defaults: Mapping[str, Any] | None = None
) -> Callable[[Any], Tensor]:
    """``hf_preprocess`` of ``directory/preprocessor_config.json`` (defaults if absent)."""
    return hf_preprocess(read_preprocessor_config(directory), image_size, defaults)


# --- tokenizer ----------------------------------------------------------------------------------


def get_hf_tokenizer(directory: str | Path, context_length: int | None = None) -> HFTokenizer:
    """``HFTokenizer`` (``clipspace.data.hf_tokenizer``) of an HF directory or a fine-tuning
    run's ``hf_base``; the context length defaults to the text tower's
    ``max_position_embeddings``."""
    base = find_hf_base(directory, None) or Path(directory)
    return load_hf_tokenizer(base, context_length)


# --- loading and saving -------------------------------------------------------------------------


def _build(base: Path, class_name: str, with_weights: bool) -> nn.Module:
    """transformers ``class_name`` from ``base``: with its weights, or its config alone (the
    weights then come from a clipspace checkpoint)."""
    cls = getattr(_transformers(), class_name)
    if with_weights:
        try:
            return cls.from_pretrained(str(base), dtype=torch.float32).eval()
        except Exception as err:  # safetensors and torch raise their own error types
            where = next((base / n for n in HF_WEIGHTS if (base / n).is_file()), base)
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ClipspaceError(f"{where}: cannot load the transformers {class_name} "
                                 f"({type(err).__name__}: {first})") from None
    return cls(cls.config_class.from_pretrained(str(base))).eval()


def load_hf_tokenizer_of(base: Path, hf_config: Any, with_tokenizer: bool) -> HFTokenizer | None:
    """The directory's tokenizer at the text tower's length, or None (``with_tokenizer`` off or
    no tokenizer files). A tokenizer that is there but cannot be loaded is an error."""
    if not with_tokenizer or not has_tokenizer_files(base):
        return None
    return load_hf_tokenizer(base, int(hf_config.text_config.max_position_embeddings))


def load_hf_model(
    path: str | Path,
    classes: Mapping[str, str],
    make: Callable[[nn.Module, Path], HFModel],
    label: str,
) -> HFModel:
    """An ``HFModel`` from a transformers directory, or from a fine-tuning run / step directory /
    weights file whose ``hf_base`` describes the architecture (weights from the checkpoint).

    ``classes``: accepted ``model_type`` -> transformers class; ``make(hf_model, base)`` wraps
    the loaded transformers model; ``label`` names the family in errors ("CLIP")."""
    p = Path(path).expanduser()
    base = find_hf_base(p, tuple(classes))
    if base is None:
        kinds = " / ".join(repr(k) for k in classes)
        raise ClipspaceError(
            f"{p}: not a Hugging Face {label} directory (config.json with model_type {kinds})"
        )
    is_base = p.is_dir() and p.resolve() == base.resolve()
    if is_base and not _has_hf_weights(base):
        raise ClipspaceError(
            f"{base}: no {' or '.join(HF_WEIGHTS)} in this HF {label} directory"
        )
    class_name = classes[str(hf_model_type(base))]
    model = make(_build(base, class_name, with_weights=is_base), base)
    if not is_base:
        files = find_weights(p)
        load_weights(model, files.weights)
        model.config.model.pretrained = str(files.weights)
    return model.eval()


def load_hf_clip(path: str | Path, with_tokenizer: bool = True) -> HFClipModel:
    """An ``HFClipModel`` from an HF CLIP directory, or from a fine-tuning run / step directory /
    weights file whose ``hf_base`` describes the architecture (weights from the checkpoint)."""

    def make(hf: nn.Module, base: Path) -> HFClipModel:
        tok = load_hf_tokenizer_of(base, hf.config, with_tokenizer)
        eot = tok.eot_id if tok is not None else hf.config.text_config.eos_token_id
        pad = tok.pad_id if tok is not None else (hf.config.text_config.pad_token_id or 0)
        return HFClipModel(
            hf, source=base, eot_id=eot, pad_id=int(pad), tokenizer=tok,
            preprocess=read_preprocess(base, int(hf.config.vision_config.image_size)),
        )

    model = load_hf_model(path, CLIP_CLASSES, make, "CLIP")
    assert isinstance(model, HFClipModel)
    return model


def load_pretrained(path: str | Path) -> tuple[HFClipModel, HFTokenizer | None, Callable]:
    """(model, tokenizer, preprocess) of an HF directory or fine-tuning run."""
    model = load_hf_clip(path)
    return model, model.tokenizer, model.preprocess


def copy_side_files(src: str | Path, dst: str | Path) -> Path:
    """Copy config/tokenizer/preprocessor files (no weights) of an HF dir to ``dst``."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for name in SIDE_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    return dst


def save_hf(model: HFModel, out_dir: str | Path) -> Path:
    """Write ``model`` (an ``HFModel``: CLIP, SigLIP) as a transformers-loadable directory
    (weights, config, tokenizer and preprocessor files), built in a temporary directory and
    renamed into place."""
    if not isinstance(model, HFModel):
        raise ClipspaceError(
            "save_hf: only models loaded from a Hugging Face directory can be exported "
            "(clipspace's own towers have no transformers equivalent)"
        )
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite=True) as tmp:
        if model.source and Path(model.source).is_dir():
            copy_side_files(model.source, tmp)
        elif model.tokenizer is not None:
            model.tokenizer.save(tmp)
        model.to_hf().save_pretrained(str(tmp))
    return out_dir


__all__ = [
    "CLIP_CLASSES",
    "HFClipModel",
    "HFModel",
    "HFTextTower",
    "HFTokenizer",
    "HFVisionTower",
    "copy_side_files",
    "find_hf_base",
    "get_hf_tokenizer",
    "hf_clipspace_config",
    "hf_config_to_clipspace",
    "hf_model_type",
    "hf_preprocess",
    "is_hf_clip_dir",
    "load_hf_clip",
    "load_hf_model",
    "load_hf_tokenizer_of",
    "load_pretrained",
    "read_preprocess",
    "read_preprocessor_config",
    "save_hf",
]
