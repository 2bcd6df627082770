"""ClipModel: two towers, linear projections, a geometry and a training objective.

image -> tower -> W_img -> PointMap (scale, exp_map0) -> point;  same for text.
Everything is decided by config fields (geometry.*, loss.*, model.*), never by a preset name:
clip = sphere + cosine InfoNCE; euclip = euclidean, x/sqrt(D), -d^2 logits, no final LN; meru =
lorentz, alpha-scaled exp_map0, -d_L logits + entailment; atmg = lorentz + angle loss + centroid.
"""

from __future__ import annotations

import copy
import math
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from clipspace.config import Config, ImageTowerConfig, TextTowerConfig
from clipspace.geometry import get_geometry, lorentz
from clipspace.geometry.scalars import Curvature, PointMap
from clipspace.losses.objective import Objective
from clipspace.models.configs import apply_named
from clipspace.models.convnet import ConvNet
from clipspace.models.text import TextTransformer
from clipspace.models.vit import VisionTransformer

#: End-of-text id of clipspace's MAD tokenizer (special tokens PAD=0, SOT=1, EOT=2).
DEFAULT_EOT_ID = 2
DEFAULT_PAD_ID = 0

#: Parameter-name fragments that never get weight decay besides every tensor with ndim < 2
#: (biases, LayerNorm/GroupNorm gains, class token, logit scale, alphas, curvature).
NO_DECAY_NAME_PARTS = ("pos_embed", "class_token")


def build_image_tower(cfg: ImageTowerConfig) -> nn.Module:
    """ConvNet or VisionTransformer from ``model.image``; has ``.output_dim``."""
    if cfg.kind == "vit":
        return VisionTransformer(
            image_size=cfg.image_size,
            patch_size=cfg.patch_size,
            width=cfg.width,
            depth=cfg.depth,
            heads=cfg.heads,
            mlp_ratio=cfg.mlp_ratio,
            in_channels=cfg.in_channels,
            pos_embed=cfg.pos_embed,
            pool=cfg.pool,
            final_ln=cfg.final_ln,
        )
    if cfg.kind == "convnet":
        return ConvNet(
            in_channels=cfg.in_channels,
            width=cfg.width,
            depth=cfg.depth,
            final_ln=cfg.final_ln,
            image_size=cfg.image_size,
            stem_stride=cfg.stem_stride,
            norm=cfg.norm,
        )
    from clipspace.config import ConfigError

    raise ConfigError(f"config key 'model.image.kind': {cfg.kind!r}; allowed: convnet, vit")


def build_text_tower(
    cfg: TextTowerConfig, eot_id: int | None = DEFAULT_EOT_ID, pad_id: int = DEFAULT_PAD_ID
) -> TextTransformer:
    return TextTransformer(
        vocab_size=cfg.vocab_size,
        context_length=cfg.context_length,
        width=cfg.width,
        depth=cfg.depth,
        heads=cfg.heads,
        mlp_ratio=cfg.mlp_ratio,
        final_ln=cfg.final_ln,
        eot_id=eot_id,
        pad_id=pad_id,
    )


def uses_curvature(geometry: ModuleType) -> bool:
    """Whether the geometry's functions depend on ``curv`` (``HAS_CURVATURE`` if the module
    defines it; else only the Lorentz model). Elsewhere the curvature is kept fixed so that it
    never becomes a parameter without a gradient (DDP would reject it)."""
    return bool(getattr(geometry, "HAS_CURVATURE", geometry is lorentz))


class ClipModel(nn.Module):
    """Image and text towers embedding into one geometry, with the training objective attached.

    Args:
        config: a resolved ``Config``; ``model.name`` is expanded with ``apply_named`` and the
            expanded copy is kept as ``self.config`` (save that one with checkpoints).
        eot_id: end-of-text token id used to pool the text tower (default 2: the MAD tokenizer's
            ``<end_of_text>``; pass ``tokenizer.eot_id`` for other tokenizers). Rows without it
            are pooled at their last non-pad token. ``None``: always the last non-pad token.
        pad_id: padding id (default 0).
    """

    def __init__(
        self,
        config: Config,
        eot_id: int | None = DEFAULT_EOT_ID,
        pad_id: int = DEFAULT_PAD_ID,
    ) -> None:
        super().__init__()
        cfg = copy.deepcopy(config)
        cfg.model = apply_named(cfg.model)
        self.config = cfg
        g, lc, mc = cfg.geometry, cfg.loss, cfg.model
        self.geometry = get_geometry(g.name)
        self.embed_dim = mc.embed_dim
        self.image_size = mc.image.image_size
        self.context_length = mc.text.context_length
        self.eot_id, self.pad_id = eot_id, pad_id

        self.visual = build_image_tower(mc.image)
        self.text = build_text_tower(mc.text, eot_id, pad_id)
        self.image_proj = nn.Linear(self.visual.output_dim, mc.embed_dim, bias=False)
        self.text_proj = nn.Linear(self.text.output_dim, mc.embed_dim, bias=False)
        nn.init.normal_(self.image_proj.weight, std=self.visual.output_dim**-0.5)
        nn.init.normal_(self.text_proj.weight, std=self.text.output_dim**-0.5)

        self.curvature = Curvature(
            g.curv,
            learnable=g.learn_curv and uses_curvature(self.geometry),
            min=g.curv_min,
            max=g.curv_max,
        )
        self.image_map = PointMap(self.geometry, mc.embed_dim, g.embed_scale, g.learn_alpha)
        self.text_map = PointMap(self.geometry, mc.embed_dim, g.embed_scale, g.learn_alpha)
        self.objective = Objective(
            self.geometry,
            contrastive=lc.contrastive,
            logit=lc.logit,
            logit_scale=lc.logit_scale,
            learn_logit_scale=lc.learn_logit_scale,
            max_logit_scale=lc.max_logit_scale,
            siglip_bias=lc.siglip_bias,
            entail_weight=lc.entail_weight,
            entail_min_radius=lc.entail_min_radius,
            centroid_weight=lc.centroid_weight,
            centroid_p=lc.centroid_p,
            centroid_q=lc.centroid_q,
            local_loss=lc.local_loss,
            gather_with_grad=lc.gather_with_grad,
        )

    # --- encoders ------------------------------------------------------------------------------

    def curv(self) -> Tensor:
        """Current curvature c (0-dim float32; meaningless but harmless outside Lorentz)."""
        return self.curvature()

    def image_features(self, images: Tensor) -> Tensor:
        """Projected image features W f (B, D), before scaling and exp_map0."""
        return self.image_proj(self.visual(images))

    def text_features(self, tokens: Tensor) -> Tensor:
        """Projected text features W f (B, D), before scaling and exp_map0."""
        return self.text_proj(self.text(tokens))

    def encode_image(self, images: Tensor, tangent: bool = False) -> Tensor:
        """Image points (B, D) in the geometry (float32); ``tangent=True``: the tangent vector
        at the origin (scaled features; unit vectors on the sphere) before exp_map0."""
        feats = self.image_features(images)
        if tangent:
            return self.image_map.tangent(feats)
        return self.image_map(feats, self.curv())

    def encode_text(self, tokens: Tensor, tangent: bool = False) -> Tensor:
        """Text points (B, D); see ``encode_image``."""
        feats = self.text_features(tokens)
        if tangent:
            return self.text_map.tangent(feats)
        return self.text_map(feats, self.curv())

    def to_points(self, v: Tensor) -> Tensor:
        """Tangent vectors at the origin -> points: geometry.exp_map0(v, c)."""
        return self.geometry.exp_map0(v, self.curv())

    # --- objective -----------------------------------------------------------------------------

    def _scale(self, pm: PointMap) -> Tensor:
        """Effective feature scale: alpha, 1/sqrt(D) or 1 (for logging)."""
        if pm.alpha is not None:
            return pm.alpha().detach().float()
        value = 1.0 / math.sqrt(pm.dim) if pm.embed_scale == "sqrt_dim" else 1.0
        return torch.tensor(value, dtype=torch.float32, device=self.curvature.log_value.device)

    def logged_scalars(self) -> dict[str, Tensor]:
        """Detached 0-dim tensors: "curv", "alpha_img", "alpha_txt", "logit_scale"."""
        return {
            "curv": self.curv().detach(),
            "alpha_img": self._scale(self.image_map),
            "alpha_txt": self._scale(self.text_map),
            "logit_scale": self.objective.logit_scale().detach().float(),
        }

    def compute_loss(self, img_points: Tensor, txt_points: Tensor) -> dict[str, Tensor]:
        """Objective output ("loss", "loss/<term>", "logit_scale") plus ``logged_scalars``."""
        out = self.objective(img_points, txt_points, self.curv())
        for key, value in self.logged_scalars().items():
            out.setdefault(key, value)
        return out

    def forward(self, images: Tensor, tokens: Tensor) -> dict[str, Tensor]:
        """Encode both modalities and return ``compute_loss`` of the batch."""
        return self.compute_loss(self.encode_image(images), self.encode_text(tokens))

    def similarity(self, img_points: Tensor, txt_points: Tensor) -> Tensor:
        """Image-by-text score (B1, B2), larger = better (the objective's logit, unscaled)."""
        return self.objective.similarity(img_points, txt_points, self.curv())

    # --- optimiser helpers ---------------------------------------------------------------------

    def no_weight_decay_names(self) -> set[str]:
        """Trainable parameters excluded from weight decay: every tensor with ndim < 2 (biases,
        norm gains, class token, logit scale, alphas, curvature, SigLIP bias) and positional
        embeddings (REFERENCE section 2)."""
        return {
            name
            for name, p in self.named_parameters()
            if p.requires_grad and (p.ndim < 2 or any(part in name for part in NO_DECAY_NAME_PARTS))
        }

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups: [{"params": decayed, "weight_decay": wd}, {"params": rest, 0.0}].

        Only parameters with ``requires_grad``; each group also carries "names"."""
        skip = self.no_weight_decay_names()
        decay, no_decay, decay_names, no_decay_names = [], [], [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if name in skip:
                no_decay.append(p)
                no_decay_names.append(name)
            else:
                decay.append(p)
                decay_names.append(name)
        return [
            {"params": decay, "weight_decay": float(weight_decay), "names": decay_names},
            {"params": no_decay, "weight_decay": 0.0, "names": no_decay_names},
        ]


__all__ = [
    "DEFAULT_EOT_ID",
    "DEFAULT_PAD_ID",
    "ClipModel",
    "build_image_tower",
    "build_text_tower",
    "uses_curvature",
]
