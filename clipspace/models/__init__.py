"""Models layer: image/text towers, ClipModel, create_model, transformers CLIP loading.

See docs/models.md. Imports geometry, losses, config, checkpoint and data (transforms and
tokenizers of pretrained models).
"""

from clipspace.config import NAMED_MODELS, model_names
from clipspace.models.clip_model import DEFAULT_EOT_ID, DEFAULT_PAD_ID, ClipModel
from clipspace.models.convnet import ConvNet
from clipspace.models.factory import (
    PRETRAINED_LOADERS,
    create_model,
    describe,
    load_model_and_tokenizer,
    register_pretrained_loader,
    save_pretrained,
    save_weights,
)
from clipspace.models.text import TextTransformer, end_positions
from clipspace.models.towers import (
    IMAGE_TOWERS,
    build_image_tower,
    build_text_tower,
    register_image_tower,
)
from clipspace.models.vit import VisionTransformer, transformer_blocks

__all__ = [
    "transformer_blocks",
    "DEFAULT_EOT_ID",
    "DEFAULT_PAD_ID",
    "IMAGE_TOWERS",
    "NAMED_MODELS",
    "PRETRAINED_LOADERS",
    "ClipModel",
    "ConvNet",
    "TextTransformer",
    "VisionTransformer",
    "build_image_tower",
    "build_text_tower",
    "create_model",
    "describe",
    "end_positions",
    "load_model_and_tokenizer",
    "model_names",
    "register_image_tower",
    "register_pretrained_loader",
    "save_pretrained",
    "save_weights",
]
