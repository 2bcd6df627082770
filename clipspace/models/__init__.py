"""Models layer: image/text towers, named configs, ClipModel and create_model.

See docs/models.md. Imports geometry, losses and config only.
"""

from clipspace.models.clip_model import (
    DEFAULT_EOT_ID,
    DEFAULT_PAD_ID,
    ClipModel,
    build_image_tower,
    build_text_tower,
)
from clipspace.models.configs import NAMED_MODELS, apply_named, model_names
from clipspace.models.convnet import ConvNet
from clipspace.models.factory import (
    create_model,
    describe,
    find_pretrained,
    load_weights,
    register_pretrained_loader,
    save_pretrained,
    save_weights,
)
from clipspace.models.text import TextTransformer, end_positions
from clipspace.models.vit import VisionTransformer

__all__ = [
    "DEFAULT_EOT_ID",
    "DEFAULT_PAD_ID",
    "NAMED_MODELS",
    "ClipModel",
    "ConvNet",
    "TextTransformer",
    "VisionTransformer",
    "apply_named",
    "build_image_tower",
    "build_text_tower",
    "create_model",
    "describe",
    "end_positions",
    "find_pretrained",
    "load_weights",
    "model_names",
    "register_pretrained_loader",
    "save_pretrained",
    "save_weights",
]
