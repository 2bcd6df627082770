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
``HFClipModel`` back as a transformers-loadable directory.

``transformers`` is imported lazily (only when an HF directory is loaded).
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from clipspace.checkpoint import find_weights, load_weights
from clipspace.config import Config, resolve, set_value
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
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
#: files copied into ``hf_base`` / next to exported weights (whichever exist)
SIDE_FILES = (
    HF_CONFIG, PREPROCESSOR, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.json", "merges.txt", "added_tokens.json", "processor_config.json",
)


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ClipspaceError(
            "loading a Hugging Face CLIP checkpoint needs transformers: pip install 'clipspace[hf]'"
        ) from err
    return transformers


# --- recognising directories --------------------------------------------------------------------


def is_hf_clip_dir(path: str | Path) -> bool:
    """True if ``path/config.json`` is a transformers config with ``model_type == "clip"``."""
    cfg = Path(path) / HF_CONFIG
    if not cfg.is_file():
        return False
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and data.get("model_type") == "clip"


def find_hf_base(path: str | Path) -> Path | None:
    """The HF directory behind ``path``: ``path`` itself if it is one, else ``hf_base/`` in
    ``path`` or one of its three parents (a fine-tuning run, step dir or weights file)."""
    p = Path(path).expanduser()
    if p.is_dir() and is_hf_clip_dir(p):
        return p
    start = p if p.is_dir() else p.parent
    for parent in [start, *list(start.parents)[:3]]:
        if is_hf_clip_dir(parent / HF_BASE):
            return parent / HF_BASE
    return None


def _has_hf_weights(path: Path) -> bool:
    return any((path / name).is_file() for name in HF_WEIGHTS)


# --- towers -------------------------------------------------------------------------------------


class HFTextTower(nn.Module):
    """transformers ``CLIPTextModel``: tokens (B, L) -> pooled end-token features (B, width).

    Pooling is transformers' own (first ``config.eos_token_id``; the legacy id 2 means argmax),
    so padding after the end token never changes the output (causal attention)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.output_dim = int(model.config.hidden_size)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.model(input_ids=tokens).pooler_output


class HFVisionTower(nn.Module):
    """transformers ``CLIPVisionModel``: images (B, 3, H, W) -> post-LN class token (B, width)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.output_dim = int(model.config.hidden_size)

    def forward(self, images: Tensor) -> Tensor:
        return self.model(pixel_values=images).pooler_output


# --- the model ----------------------------------------------------------------------------------


def hf_config_to_clipspace(hf_config: Any, source: str = "") -> Config:
    """A clipspace ``Config`` describing an HF CLIP: sphere, cosine InfoNCE, the checkpoint's
    logit scale; ``model.*`` records the HF tower sizes (``model.name = "custom"``)."""
    t, v = hf_config.text_config, hf_config.vision_config
    scale = math.exp(float(getattr(hf_config, "logit_scale_init_value", math.log(1 / 0.07))))
    cfg = resolve("clip", {"geometry.learn_curv": False})
    values = {
        "model.name": "custom",
        "model.pretrained": source,
        "model.embed_dim": int(hf_config.projection_dim),
        "model.image.kind": "vit",
        "model.image.image_size": int(v.image_size),
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
        "loss.logit_scale": scale,
        "loss.max_logit_scale": max(100.0, scale),
    }
    for key, value in values.items():
        set_value(cfg, key, value)
    return cfg


def _placeholder_config(cfg: Config) -> Config:
    """``cfg`` with tiny towers: ClipModel builds them and HFClipModel replaces them at once."""
    tiny = copy.deepcopy(cfg)
    for key, value in {
        "model.image.kind": "convnet", "model.image.width": 4, "model.image.depth": 1,
        "model.image.image_size": 8, "model.text.vocab_size": 8, "model.text.context_length": 4,
        "model.text.width": 4, "model.text.depth": 1, "model.text.heads": 1,
    }.items():
        set_value(tiny, key, value)
    return tiny


class HFClipModel(ClipModel):
    """A ``ClipModel`` around a transformers ``CLIPModel`` (same API; sphere geometry).

    Attributes besides ClipModel's: ``hf_config`` (the transformers ``CLIPConfig``), ``source``
    (the HF directory), ``preprocess`` (image -> tensor following the checkpoint's
    preprocessor_config.json) and ``tokenizer`` (``HFTokenizer`` or None).
    """

    def __init__(
        self,
        hf_model: nn.Module,
        source: str | Path = "",
        eot_id: int | None = None,
        pad_id: int = 0,
        preprocess: Callable[[Any], Tensor] | None = None,
        tokenizer: Any = None,
    ) -> None:
        hf_config = hf_model.config
        cfg = hf_config_to_clipspace(hf_config, str(source))
        super().__init__(_placeholder_config(cfg), eot_id=eot_id, pad_id=pad_id)
        self.config = cfg
        self.hf_config = hf_config
        self.source = str(source)
        self.visual = HFVisionTower(hf_model.vision_model)
        self.text = HFTextTower(hf_model.text_model)
        self.image_proj = hf_model.visual_projection
        self.text_proj = hf_model.text_projection
        with torch.no_grad():
            self.objective.logit_scale.log_value.copy_(hf_model.logit_scale.detach().float())
        self.image_size = int(hf_config.vision_config.image_size)
        self.context_length = int(hf_config.text_config.max_position_embeddings)
        self.embed_dim = int(hf_config.projection_dim)
        self.preprocess = preprocess or hf_preprocess({}, self.image_size)
        self.tokenizer = tokenizer

    def to_hf(self) -> nn.Module:
        """A transformers ``CLIPModel`` holding copies of this model's current weights."""
        tr = _transformers()
        out = tr.CLIPModel(copy.deepcopy(self.hf_config)).eval()
        out.text_model.load_state_dict(self.text.model.state_dict())
        out.vision_model.load_state_dict(self.visual.model.state_dict())
        out.text_projection.load_state_dict(self.text_proj.state_dict())
        out.visual_projection.load_state_dict(self.image_proj.state_dict())
        with torch.no_grad():
            out.logit_scale.copy_(self.objective.logit_scale.log_value.detach().float())
        return out


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


def hf_preprocess(spec: dict[str, Any], image_size: int = 224) -> Callable[[Any], Tensor]:
    """Image -> float tensor (3, H, W) following a ``preprocessor_config.json`` dict: convert to
    RGB, resize (shortest edge, bicubic by default), centre crop, x/255, (x - mean) / std.

    Built from clipspace.data.transforms' ``Compose``/``ToRGB``/``ToTensor``/``Normalize`` plus
    transformers-exact resize/crop rounding (``HFResize``/``HFCenterCrop``)."""
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


def read_preprocess(directory: str | Path, image_size: int = 224) -> Callable[[Any], Tensor]:
    """``hf_preprocess`` of ``directory/preprocessor_config.json`` (defaults if absent)."""
    path = Path(directory) / PREPROCESSOR
    spec: dict[str, Any] = {}
    if path.is_file():
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ClipspaceError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from None
    return hf_preprocess(spec, image_size)


# --- tokenizer ----------------------------------------------------------------------------------


class HFTokenizer:
    """clipspace tokenizer interface over a transformers tokenizer.

    ``tok(str | list[str]) -> LongTensor (B, context_length)``: [SOT] ids[:L-2] [EOT] then pad
    (pad = the tokenizer's pad token, else EOT, as OpenAI CLIP); the end token is always kept.
    """

    def __init__(self, hf_tokenizer: Any, context_length: int = 77) -> None:
        self.hf = hf_tokenizer
        self.context_length = int(context_length)
        if self.context_length < 2:
            raise ClipspaceError(f"context_length must be >= 2, got {context_length}")
        eot = hf_tokenizer.eos_token_id
        if eot is None:
            raise ClipspaceError("Hugging Face tokenizer has no eos (end-of-text) token")
        self.eot_id = int(eot)
        sot = hf_tokenizer.bos_token_id
        self.sot_id = None if sot is None else int(sot)
        pad = hf_tokenizer.pad_token_id
        self.pad_id = self.eot_id if pad is None else int(pad)
        self._special = {i for i in (self.sot_id, self.eot_id, self.pad_id) if i is not None}

    @property
    def vocab_size(self) -> int:
        return int(len(self.hf))

    def encode(self, text: str) -> list[int]:
        """Ids with SOT/EOT, truncated to ``context_length`` keeping EOT, unpadded."""
        body = list(self.hf(text, add_special_tokens=False)["input_ids"])
        head = [] if self.sot_id is None else [self.sot_id]
        room = self.context_length - len(head) - 1
        return [*head, *body[:room], self.eot_id]

    def __call__(self, texts: str | Sequence[str]) -> Tensor:
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        out = np.full((len(texts), self.context_length), self.pad_id, dtype=np.int64)
        if texts:
            bodies = self.hf(texts, add_special_tokens=False)["input_ids"]
            head = [] if self.sot_id is None else [self.sot_id]
            room = self.context_length - len(head) - 1
            for row, body in enumerate(bodies):
                ids = [*head, *list(body)[:room], self.eot_id]
                out[row, : len(ids)] = ids
        return torch.from_numpy(out)

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        keep = [int(i) for i in ids if int(i) not in self._special]
        return str(self.hf.decode(keep, skip_special_tokens=True))

    def save(self, path: str | Path) -> Path:
        """``save_pretrained`` into directory ``path`` (tokenizer.json etc.)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.hf.save_pretrained(str(path))
        return path

    def __repr__(self) -> str:
        return f"HFTokenizer(vocab_size={self.vocab_size}, context_length={self.context_length})"


def get_hf_tokenizer(directory: str | Path, context_length: int | None = None) -> HFTokenizer:
    """``HFTokenizer`` of an HF directory (or a fine-tuning run's ``hf_base``); the context
    length defaults to the text tower's ``max_position_embeddings``."""
    base = find_hf_base(directory) or Path(directory)
    tr = _transformers()
    try:
        tok = tr.AutoTokenizer.from_pretrained(str(base))
    except (OSError, ValueError) as err:
        raise ClipspaceError(f"{base}: cannot load the Hugging Face tokenizer ({err})") from None
    if context_length is None:
        context_length = 77
        if is_hf_clip_dir(base):
            data = json.loads((base / HF_CONFIG).read_text(encoding="utf-8"))
            context_length = int(data.get("text_config", {}).get("max_position_embeddings", 77))
    return HFTokenizer(tok, context_length)


# --- loading and saving -------------------------------------------------------------------------


def _build(base: Path, with_weights: bool) -> nn.Module:
    tr = _transformers()
    if with_weights:
        try:
            return tr.CLIPModel.from_pretrained(str(base), dtype=torch.float32).eval()
        except (OSError, ValueError) as err:
            raise ClipspaceError(f"{base}: cannot load the Hugging Face CLIP ({err})") from None
    hf_cfg = tr.CLIPConfig.from_pretrained(str(base))
    return tr.CLIPModel(hf_cfg).eval()


def load_hf_clip(path: str | Path, with_tokenizer: bool = True) -> HFClipModel:
    """An ``HFClipModel`` from an HF CLIP directory, or from a fine-tuning run / step directory /
    weights file whose ``hf_base`` describes the architecture (weights from the checkpoint)."""
    p = Path(path).expanduser()
    base = find_hf_base(p)
    if base is None:
        raise ClipspaceError(
            f"{p}: not a Hugging Face CLIP directory (config.json with model_type 'clip')"
        )
    is_base = p.is_dir() and p.resolve() == base.resolve()
    if is_base and not _has_hf_weights(base):
        raise ClipspaceError(f"{base}: no {' or '.join(HF_WEIGHTS)} in this HF CLIP directory")
    hf = _build(base, with_weights=is_base)
    tok = None
    if with_tokenizer and ((base / "tokenizer.json").is_file() or (base / "vocab.json").is_file()):
        tok = get_hf_tokenizer(base, int(hf.config.text_config.max_position_embeddings))
    eot = tok.eot_id if tok is not None else hf.config.text_config.eos_token_id
    pad = tok.pad_id if tok is not None else (hf.config.text_config.pad_token_id or 0)
    model = HFClipModel(
        hf, source=base, eot_id=eot, pad_id=int(pad),
        preprocess=read_preprocess(base, int(hf.config.vision_config.image_size)), tokenizer=tok,
    )
    if not is_base:
        files = find_weights(p)
        load_weights(model, files.weights)
        model.config.model.pretrained = str(files.weights)
    return model.eval()


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


def save_hf(model: HFClipModel, out_dir: str | Path) -> Path:
    """Write ``model`` as a transformers-loadable CLIP directory (weights, config, tokenizer and
    preprocessor files), built in a temporary directory and renamed into place."""
    if not isinstance(model, HFClipModel):
        raise ClipspaceError(
            "save_hf: only models loaded from a Hugging Face CLIP can be exported (clipspace's "
            "own towers have no transformers equivalent)"
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
    "HFClipModel",
    "HFTextTower",
    "HFTokenizer",
    "HFVisionTower",
    "copy_side_files",
    "find_hf_base",
    "get_hf_tokenizer",
    "hf_config_to_clipspace",
    "hf_preprocess",
    "is_hf_clip_dir",
    "load_hf_clip",
    "load_pretrained",
    "read_preprocess",
    "save_hf",
]
