"""ClipModel: two towers, linear projections, a geometry and a training objective.

image -> tower -> W_img -> PointMap (scale, exp_map0) -> point;  same for text.
Everything is decided by config fields (geometry.*, loss.*, model.*), never by a preset name:
clip = sphere + cosine InfoNCE; euclip = euclidean, x/sqrt(D), -d^2 logits, no final LN; meru =
lorentz, alpha-scaled exp_map0, -d_L logits + entailment; atmg = lorentz + angle loss + centroid.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from types import ModuleType

import torch
from torch import Tensor, nn

from clipspace.config import Config, GeometryConfig, LossConfig
from clipspace.geometry import get_geometry, lorentz
from clipspace.geometry.scalars import Curvature, PointMap
from clipspace.losses.objective import Objective
from clipspace.models.towers import build_image_tower, build_text_tower

#: End-of-text id of clipspace's MAD tokenizer (special tokens PAD=0, SOT=1, EOT=2).
DEFAULT_EOT_ID = 2
DEFAULT_PAD_ID = 0

#: Embedding tables that never get weight decay (besides every tensor with ndim < 2: biases,
#: norm gains, class tokens, logit scale, alphas, curvature); clipspace's and transformers' names.
EMBEDDING_TABLES = ("pos_embed", "token_embedding", "position_embedding", "class_token",
                    "class_embedding")


def uses_curvature(geometry: ModuleType) -> bool:
    """Whether the geometry's functions depend on ``curv`` (``HAS_CURVATURE`` if the module
    defines it; else only the Lorentz model). Elsewhere the curvature is kept fixed so that it
    never becomes a parameter without a gradient (DDP would reject it)."""
    return bool(getattr(geometry, "HAS_CURVATURE", geometry is lorentz))


class ClipModel(nn.Module):
    """Image and text towers embedding into one geometry, with the training objective attached.

    Args:
        config: a resolved ``Config`` (its model section already holds the named shape; a copy
            is kept as ``self.config``, saved with every checkpoint).
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
        self.config = cfg
        g, lc, mc = cfg.geometry, cfg.loss, cfg.model
        self.embed_dim = mc.embed_dim
        self.image_size = mc.image.image_size
        self.context_length = mc.text.context_length
        self.eot_id, self.pad_id = eot_id, pad_id

        self.visual = build_image_tower(mc.image)
        self.text = build_text_tower(mc.text, eot_id, pad_id)
        self.image_proj = nn.Linear(self.visual.output_dim, mc.embed_dim, bias=False)
        # model.init_text_shift > 0: a bias on the text projection, initialised to a random
        # direction of that norm (a large modality gap at step 0, Two Effects Fig. 7b)
        self.text_proj = nn.Linear(self.text.output_dim, mc.embed_dim,
                                   bias=mc.init_text_shift > 0)
        nn.init.normal_(self.image_proj.weight, std=self.visual.output_dim**-0.5)
        nn.init.normal_(self.text_proj.weight, std=self.text.output_dim**-0.5)
        if self.text_proj.bias is not None:
            with torch.no_grad():
                shift = torch.randn(mc.embed_dim)
                self.text_proj.bias.copy_(shift * (mc.init_text_shift / shift.norm()))

        self.set_geometry(g, lc)
        if mc.grad_checkpointing:
            self.set_grad_checkpointing(True)

    def set_geometry(self, g: GeometryConfig, lc: LossConfig) -> None:
        """(Re)build what lies past the projections from config sections: the geometry, the
        curvature, the two point maps (scale, exp_map0) and the objective, at their initial
        values; the towers and projections are kept. ``clipspace finetune geometry`` moves a
        pretrained model into another geometry with it (``models.adapt``)."""
        self.config.geometry, self.config.loss = copy.deepcopy(g), copy.deepcopy(lc)
        self.geometry = get_geometry(g.name)
        self.curvature = Curvature(
            g.curv,
            learnable=g.learn_curv and uses_curvature(self.geometry),
            min=g.curv_min,
            max=g.curv_max,
        )
        self.image_map = PointMap(self.geometry, self.embed_dim, g.embed_scale, g.learn_alpha)
        self.text_map = PointMap(self.geometry, self.embed_dim, g.embed_scale, g.learn_alpha)
        # LossConfig's fields are Objective's keyword arguments, one to one
        self.objective = Objective(self.geometry, **dataclasses.asdict(lc))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing per transformer block in both towers (``model.
        grad_checkpointing``; open_clip's ``--grad-checkpointing``), active in training mode
        only. Towers without transformer blocks (convnet, transformers' towers) are unchanged."""
        for tower in (self.visual, self.text):
            setter = getattr(tower, "set_grad_checkpointing", None)
            if callable(setter):
                setter(enable)

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

    def compute_loss(self, img_points: Tensor, txt_points: Tensor,
                     parts: tuple[Tensor, Tensor, Tensor] | None = None) -> dict[str, Tensor]:
        """Objective output ("loss", "loss/<term>", "logit_scale") plus ``logged_scalars``;
        ``parts``: (box image points, box text points, box_scene) of a batch with boxes."""
        out = self.objective(img_points, txt_points, self.curv(), parts)
        for key, value in self.logged_scalars().items():
            out.setdefault(key, value)
        return out

    def forward(self, images: Tensor, tokens: Tensor, box_images: Tensor | None = None,
                box_tokens: Tensor | None = None,
                box_scene: Tensor | None = None) -> dict[str, Tensor]:
        """Encode both modalities and return ``compute_loss`` of the batch. A batch of scenes
        also gives its box crops, box captions and each box's scene row (``box_scene``): the
        crops go through the image tower and the box captions through the text tower, in one
        pass with the wholes (HyCoCLIP feeds boxes to the same towers); an objective that is
        not compositional ignores them."""
        parts = (box_images, box_tokens, box_scene)
        if any(p is None for p in parts) or not self.objective.compositional:
            return self.compute_loss(self.encode_image(images), self.encode_text(tokens))
        b = images.shape[0]
        img = self.encode_image(torch.cat([images, box_images.to(images.dtype)]))
        txt = self.encode_text(torch.cat([tokens, box_tokens]))
        return self.compute_loss(img[:b], txt[:b], (img[b:], txt[b:], box_scene))

    def similarity(self, img_points: Tensor, txt_points: Tensor) -> Tensor:
        """Image-by-text score (B1, B2), larger = better (the objective's logit, unscaled)."""
        return self.objective.similarity(img_points, txt_points, self.curv())

    def logits(self, img_points: Tensor, txt_points: Tensor) -> Tensor:
        """Training logits (B1, B2) = logit_scale * ``similarity`` (SigLIP's bias left out: it
        shifts every logit equally, so softmax entropy and rankings do not see it)."""
        return self.objective.logit_scale().float() * self.similarity(img_points, txt_points)

    def rank_scores(self, img_points: Tensor, txt_points: Tensor) -> Tensor:
        """Image-by-text scores (B1, B2) that rank like ``similarity`` along rows and columns,
        without its acos/acosh/sqrt (``Objective.rank_scores``): pass it to
        ``eval.retrieval.recall_at_k`` as ``score_fn``."""
        return self.objective.rank_scores(img_points, txt_points, self.curv())

    # --- what the optimizer and the checkpoint need to know -----------------------------------

    def no_weight_decay_names(self) -> set[str]:
        """Trainable parameters without weight decay: every tensor with ndim < 2 (biases, norm
        gains, class token, logit scale, alphas, curvature, SigLIP bias) and the embedding tables
        (token and positional embeddings; docs/reference.md section 2). The optimizer's groups
        are built from this set (``train.optim.param_groups``)."""
        return {
            name
            for name, p in self.named_parameters()
            if p.requires_grad
            and (p.ndim < 2 or any(part in EMBEDDING_TABLES for part in name.split(".")))
        }

    def checkpoint_state(self) -> dict[str, Tensor] | None:
        """What a checkpoint of this model holds, when not the whole state: a model adapted from
        a base (``config.adapt.base``, ``models.adapt``) leaves out the frozen tower parameters,
        which are the base's (its adapters, unlocked blocks, projections, geometry scalars and
        buffers stay). None: the whole state."""
        if not self.config.adapt.base:
            return None
        frozen = {f"{t}.{n}" for t in ("visual", "text")
                  for n, p in getattr(self, t).named_parameters() if not p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k not in frozen}

    def weights_metadata(self) -> dict[str, str]:
        """Stored in every weights file's header: the text tower's pooling ids."""
        return {
            "format": "clipspace",
            "eot_id": "" if self.eot_id is None else str(self.eot_id),
            "pad_id": str(self.pad_id),
        }


__all__ = ["DEFAULT_EOT_ID", "DEFAULT_PAD_ID", "EMBEDDING_TABLES", "ClipModel", "uses_curvature"]
