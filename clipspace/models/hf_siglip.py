"""Hugging Face SigLIP and SigLIP 2 checkpoints as clipspace models (optional extra ``hf``).

A transformers directory whose ``config.json`` has ``model_type: "siglip"`` (``SiglipModel``:
the SigLIP checkpoints and the fixed-resolution SigLIP 2 ones such as
``google/siglip2-base-patch16-224``) or ``"siglip2"`` (``Siglip2Model``: the NaFlex SigLIP 2
checkpoints) becomes an ``HFSiglipModel``: a ``ClipModel`` (via ``hf_clip.HFModel``) whose towers
are transformers' ``vision_model`` / ``text_model``, on the sphere, with the config recording
``loss.contrastive = "siglip"`` and the checkpoint's ``logit_scale`` (as exp) and ``logit_bias``.
What transformers does, and what clipspace matches:

- Features: ``get_image_features`` / ``get_text_features`` are the towers' ``pooler_output``
  (vision: the multi-head attention-pooling head; text: ``head`` of the *last position's*
  final-LN features; there are no separate projections), so ``encode_image`` /
  ``encode_text`` equal them after L2 normalisation.
- Scores: ``SiglipModel.forward`` returns ``logits_per_image = cos * logit_scale.exp() +
  logit_bias`` (``sigmoid`` of it is the match probability); ``HFSiglipModel.similarity`` returns
  exactly that, and ``compute_loss`` is SigLIP's sigmoid loss, as ``forward(return_loss=True)``.
- Text: SigLIP was trained on text padded to ``max_length`` (64) and pools the last position,
  which is usually padding; ``clipspace.data.hf_tokenizer.HFTokenizer`` gives transformers' ids
  with ``padding="max_length"`` (the tokenizer's own pad token and side). The text tower is
  given ``input_ids`` only, without an attention mask, as SigLIP was trained (big_vision /
  open_clip apply no padding mask) and as transformers' docs call ``get_text_features``; note
  that transformers' tokenizers also return an ``attention_mask``, and ``model(**inputs)`` with
  it gives (slightly) different text features.
- Images (SigLIP): ``SiglipImageProcessor`` resizes to exactly ``size`` (h, w) (bicubic, no
  crop), rescales by 1/255 and normalises with mean = std = 0.5; ``hf_clip.hf_preprocess``
  follows ``preprocessor_config.json`` with those class defaults.

SigLIP 2 NaFlex restriction: transformers' ``Siglip2ImageProcessor`` resizes every image, keeping
its aspect ratio, to the largest size of at most ``max_num_patches`` patches (multiples of
``patch_size``), cuts it into patches padded to ``max_num_patches`` and passes
``pixel_attention_mask`` and ``spatial_shapes``. clipspace's image interface is a batch of
equally sized (B, 3, H, W) images, so:

- the vision tower (``NaFlexVisionTower``) takes any (B, 3, H, W) batch with H and W multiples
  of ``patch_size``, patchifies it as the processor does and passes an all-ones
  ``pixel_attention_mask`` and ``spatial_shapes = (H / p, W / p)``: the features equal
  transformers' for the images the processor would make of that size;
- ``preprocess`` resizes every image to one fixed square of side ``patch_size *
  isqrt(max_num_patches)`` (256 for ``max_num_patches=256``, patch 16): what the processor does
  for a square image; a non-square image is stretched to the square, where transformers would
  keep its aspect ratio (and give different features). ``model.image_size`` is that side.

``transformers`` is imported lazily (only when a directory is loaded). A SigLIP (v1) tokenizer is
a SentencePiece model: loading it needs the ``sentencepiece`` package (SigLIP 2's Gemma tokenizer
does not); without it the directory fails to load with a ``ClipspaceError`` saying so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from clipspace.config import Config
from clipspace.errors import ClipspaceError
from clipspace.models.hf_clip import (
    HFModel,
    HFTextTower,
    HFVisionTower,
    find_hf_base,
    hf_clipspace_config,
    hf_preprocess,
    load_hf_model,
    load_hf_tokenizer_of,
    read_preprocessor_config,
)

#: model_type -> transformers class
SIGLIP_CLASSES: dict[str, str] = {"siglip": "SiglipModel", "siglip2": "Siglip2Model"}
#: ``SiglipImageProcessor``'s class defaults (keys a preprocessor_config.json may leave out)
SIGLIP_PREPROCESS: dict[str, Any] = {
    "do_resize": True, "resample": 3, "do_center_crop": False, "do_rescale": True,
    "rescale_factor": 1 / 255, "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
}
#: ``Siglip2ImageProcessor``'s: bilinear, patch 16, at most 256 patches
SIGLIP2_PREPROCESS: dict[str, Any] = {
    **SIGLIP_PREPROCESS, "resample": 2, "patch_size": 16, "max_num_patches": 256,
}


def find_siglip_base(path: str | Path) -> Path | None:
    """The SigLIP / SigLIP 2 directory behind ``path`` (itself, or a fine-tuning run's
    ``hf_base``), else None."""
    return find_hf_base(path, tuple(SIGLIP_CLASSES))


def is_siglip_path(path: str | Path) -> bool:
    """Whether ``load_hf_siglip`` handles ``path`` (a SigLIP directory or a run holding one in
    ``hf_base``): the matcher registered in ``models.factory``."""
    return find_siglip_base(path) is not None


def is_hf_siglip_dir(path: str | Path) -> bool:
    """True if ``path/config.json`` has ``model_type`` "siglip" or "siglip2"."""
    p = Path(path)
    return p.is_dir() and find_siglip_base(p) == p


def naflex_side(patch_size: int, max_num_patches: int) -> int:
    """Side of the square image ``Siglip2ImageProcessor`` makes of a square input: the most
    whole patches per side with (side / patch)^2 <= max_num_patches."""
    return int(patch_size) * math.isqrt(int(max_num_patches))


class NaFlexVisionTower(nn.Module):
    """transformers ``Siglip2VisionModel`` on (B, 3, H, W) batches -> ``pooler_output``.

    H and W must be multiples of ``patch_size``. Patches are cut in the processor's order
    (row-major patches, each flattened as (p, p, C)) and passed with an all-ones
    ``pixel_attention_mask`` and ``spatial_shapes = (H / p, W / p)`` (no padding patches: they
    are masked out by transformers anyway)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.patch_size = int(model.config.patch_size)
        self.output_dim = int(model.config.hidden_size)

    def patchify(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(pixel_values (B, N, p*p*C), pixel_attention_mask (B, N), spatial_shapes (B, 2))."""
        b, c, h, w = images.shape
        p = self.patch_size
        if h % p or w % p:
            raise ClipspaceError(
                f"SigLIP 2 images must be multiples of the patch size {p} (got {h}x{w}); use the "
                "model's preprocess"
            )
        gh, gw = h // p, w // p
        patches = images.reshape(b, c, gh, p, gw, p).permute(0, 2, 4, 3, 5, 1)
        patches = patches.reshape(b, gh * gw, p * p * c)
        mask = torch.ones(b, gh * gw, dtype=torch.int32, device=images.device)
        shapes = torch.tensor([[gh, gw]], dtype=torch.long, device=images.device).expand(b, 2)
        return patches, mask, shapes

    def forward(self, images: Tensor) -> Tensor:
        patches, mask, shapes = self.patchify(images)
        return self.model(
            pixel_values=patches, pixel_attention_mask=mask, spatial_shapes=shapes
        ).pooler_output


def _image_side(hf_config: Any, preprocessor: dict[str, Any]) -> int:
    """Input side: SigLIP's ``vision_config.image_size``; SigLIP 2's fixed NaFlex square."""
    v = hf_config.vision_config
    if hf_config.model_type == "siglip2":
        patches = preprocessor.get("max_num_patches") or getattr(v, "num_patches", 256)
        return naflex_side(int(v.patch_size), int(patches))
    return int(v.image_size)


def siglip_config_to_clipspace(
    hf_model: nn.Module, image_size: int, source: str = ""
) -> Config:
    """A clipspace ``Config`` describing a transformers SigLIP: sphere, ``loss.contrastive =
    "siglip"`` with the checkpoint's ``logit_scale.exp()`` and ``logit_bias``; ``model.*``
    records the tower sizes (``model.name = "custom"``, ``model.image.image_size`` the input
    side)."""
    c = hf_model.config
    scale = float(hf_model.logit_scale.detach().float().exp().reshape(()))
    bias = float(hf_model.logit_bias.detach().float().reshape(()))
    return hf_clipspace_config(c.text_config, c.vision_config, {
        "model.embed_dim": int(c.vision_config.hidden_size),
        "model.image.image_size": int(image_size),
        "loss.contrastive": "siglip",
        "loss.logit_scale": scale,
        "loss.max_logit_scale": max(100.0, scale),
        "loss.siglip_bias": bias,
    }, source)


class HFSiglipModel(HFModel):
    """A ``ClipModel`` around a transformers ``SiglipModel`` / ``Siglip2Model``: sphere, SigLIP
    sigmoid loss with the checkpoint's logit scale and bias, and ``similarity`` returning
    transformers' ``logits_per_image``. See the module docstring and ``hf_clip.HFModel``."""

    def __init__(
        self,
        hf_model: nn.Module,
        source: str | Path = "",
        pad_id: int = 0,
        preprocess: Callable[[Any], Tensor] | None = None,
        tokenizer: Any = None,
        image_size: int | None = None,
    ) -> None:
        c = hf_model.config
        kind = str(c.model_type)
        if kind not in SIGLIP_CLASSES:
            raise ClipspaceError(f"{source}: model_type {kind!r} is not SigLIP")
        if not getattr(c.vision_config, "vision_use_head", True):
            raise ClipspaceError(f"{source}: SigLIP without a vision pooling head has no "
                                 "image embedding (vision_use_head is false)")
        dim, text_dim = int(c.vision_config.hidden_size), int(c.text_config.projection_size)
        if dim != text_dim:
            raise ClipspaceError(f"{source}: image features ({dim}) and text features "
                                 f"({text_dim}) differ in size")
        visual = NaFlexVisionTower if kind == "siglip2" else HFVisionTower
        towers = (visual(hf_model.vision_model), HFTextTower(hf_model.text_model, text_dim),
                  nn.Identity(), nn.Identity())
        side = image_size or _image_side(c, {})
        cfg = siglip_config_to_clipspace(hf_model, side, str(source))
        # text pooling is transformers' (last position), not an end token: eot_id None
        super().__init__(hf_model, cfg, towers, source, None, pad_id, preprocess, tokenizer)
        self.hf_class = SIGLIP_CLASSES[kind]
        assert self.objective.siglip_bias is not None
        with torch.no_grad():
            self.objective.logit_scale.log_value.copy_(hf_model.logit_scale.detach().reshape(()))
            self.objective.siglip_bias.copy_(hf_model.logit_bias.detach().reshape(()))

    def similarity(self, img_points: Tensor, txt_points: Tensor) -> Tensor:
        """transformers' ``logits_per_image`` (B1, B2): cos * logit_scale.exp() + logit_bias
        (the sigmoid of it is SigLIP's match probability)."""
        bias = self.objective.siglip_bias
        assert bias is not None
        cos = super().similarity(img_points, txt_points)
        return cos * self.objective.logit_scale() + bias

    def hf_parts(self) -> dict[str, nn.Module]:
        return {"text_model": self.text.model, "vision_model": self.visual.model}

    def _export_scalars(self, out: nn.Module) -> None:
        assert self.objective.siglip_bias is not None
        out.logit_scale.copy_(self.objective.logit_scale.log_value.detach().reshape(1))
        out.logit_bias.copy_(self.objective.siglip_bias.detach().reshape(1))


def siglip_preprocess(
    directory: str | Path, hf_config: Any
) -> tuple[Callable[[Any], Tensor], int]:
    """(image -> (3, S, S) tensor, S) following ``directory/preprocessor_config.json`` with the
    SigLIP (or SigLIP 2) image processor's defaults; SigLIP 2 at its fixed NaFlex square."""
    spec = read_preprocessor_config(directory)
    side = _image_side(hf_config, spec)
    if hf_config.model_type == "siglip2":
        fixed = {**spec, "size": {"height": side, "width": side}, "do_center_crop": False}
        return hf_preprocess(fixed, side, SIGLIP2_PREPROCESS), side
    defaults = {**SIGLIP_PREPROCESS, "size": {"height": side, "width": side}}
    return hf_preprocess(spec, side, defaults), side


def load_hf_siglip(path: str | Path, with_tokenizer: bool = True) -> HFSiglipModel:
    """An ``HFSiglipModel`` from a SigLIP / SigLIP 2 directory, or from a fine-tuning run / step
    directory / weights file whose ``hf_base`` is one (weights from the checkpoint). Missing
    weights, an unreadable tokenizer or config raise ``ClipspaceError`` naming the file."""

    def make(hf: nn.Module, base: Path) -> HFSiglipModel:
        tok = load_hf_tokenizer_of(base, hf.config, with_tokenizer)
        pad = tok.pad_id if tok is not None else (hf.config.text_config.pad_token_id or 0)
        preprocess, side = siglip_preprocess(base, hf.config)
        return HFSiglipModel(hf, source=base, pad_id=int(pad), preprocess=preprocess,
                             tokenizer=tok, image_size=side)

    model = load_hf_model(path, SIGLIP_CLASSES, make, "SigLIP")
    assert isinstance(model, HFSiglipModel)
    return model


__all__ = [
    "SIGLIP2_PREPROCESS",
    "SIGLIP_CLASSES",
    "SIGLIP_PREPROCESS",
    "HFSiglipModel",
    "NaFlexVisionTower",
    "find_siglip_base",
    "is_hf_siglip_dir",
    "is_siglip_path",
    "load_hf_siglip",
    "naflex_side",
    "siglip_config_to_clipspace",
    "siglip_preprocess",
]
