"""Tower registry: ``model.image.kind`` names a builder here (config validation of that key
happens when a model is built, against ``IMAGE_TOWERS``). Every tower has ``.output_dim``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from clipspace.config import ConfigError, ImageTowerConfig, TextTowerConfig
from clipspace.models.convnet import ConvNet
from clipspace.models.text import TextTransformer
from clipspace.models.vit import VisionTransformer


def _vit(cfg: ImageTowerConfig) -> nn.Module:
    return VisionTransformer(
        image_size=cfg.image_size, patch_size=cfg.patch_size, width=cfg.width, depth=cfg.depth,
        heads=cfg.heads, mlp_ratio=cfg.mlp_ratio, in_channels=cfg.in_channels,
        pos_embed=cfg.pos_embed, pool=cfg.pool, final_ln=cfg.final_ln,
    )


def _convnet(cfg: ImageTowerConfig) -> nn.Module:
    return ConvNet(
        in_channels=cfg.in_channels, width=cfg.width, depth=cfg.depth, final_ln=cfg.final_ln,
        image_size=cfg.image_size, stem_stride=cfg.stem_stride, norm=cfg.norm,
    )


#: model.image.kind -> builder(ImageTowerConfig) -> tower with ``.output_dim``
IMAGE_TOWERS: dict[str, Callable[[ImageTowerConfig], nn.Module]] = {
    "convnet": _convnet,
    "vit": _vit,
}


def register_image_tower(kind: str, builder: Callable[[ImageTowerConfig], nn.Module]) -> None:
    """Make ``model.image.kind = kind`` build ``builder(cfg)``."""
    IMAGE_TOWERS[kind] = builder


def build_image_tower(cfg: ImageTowerConfig) -> nn.Module:
    """The image tower named by ``model.image.kind``."""
    if cfg.kind not in IMAGE_TOWERS:
        raise ConfigError(
            f"config key 'model.image.kind': {cfg.kind!r}; allowed: {', '.join(IMAGE_TOWERS)}"
        )
    return IMAGE_TOWERS[cfg.kind](cfg)


def build_text_tower(cfg: TextTowerConfig, eot_id: int | None, pad_id: int) -> TextTransformer:
    """The causal text transformer of ``model.text``, pooling at ``eot_id``."""
    return TextTransformer(
        vocab_size=cfg.vocab_size, context_length=cfg.context_length, width=cfg.width,
        depth=cfg.depth, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio, final_ln=cfg.final_ln,
        eot_id=eot_id, pad_id=pad_id,
    )


__all__ = ["IMAGE_TOWERS", "build_image_tower", "build_text_tower", "register_image_tower"]
