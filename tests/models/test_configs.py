"""Named model configs: expansion rules, errors, and paper-scale sizes on the meta device."""

from __future__ import annotations

import pytest
import torch

from clipspace.config import Config, ConfigError, ImageTowerConfig, load, resolve, save
from clipspace.models import NAMED_MODELS, ClipModel, describe, model_names


def test_named_model_fills_shape_fields() -> None:
    cfg = resolve("clip", {"model.name": "mad-vit"}).model
    assert (cfg.image.kind, cfg.image.width, cfg.image.depth, cfg.image.heads) == ("vit", 128, 4, 2)
    assert (cfg.image.patch_size, cfg.image.image_size) == (4, 28)
    assert (cfg.text.width, cfg.text.depth, cfg.text.heads) == (128, 4, 2)
    assert (cfg.text.context_length, cfg.text.vocab_size, cfg.embed_dim) == (16, 1000, 128)
    big = resolve("clip", {"model.name": "mad-vit-256"}).model
    assert (big.image.width, big.image.depth, big.image.heads) == (256, 6, 4)


def test_named_model_is_a_layer_under_later_keys() -> None:
    """Keys set with the name win whatever their order, even when equal to a dataclass
    default (the old 'equal to the default means unset' rule is gone)."""
    over = {"model.image.final_ln": False, "model.text.vocab_size": 5000,
            "model.image.width": ImageTowerConfig().width, "model.name": "ViT-B/16"}
    out = resolve("euclip", over).model
    assert out.name == "vit-b-16"
    assert out.image.patch_size == 16 and out.image.image_size == 224
    assert out.image.width == ImageTowerConfig().width  # the user's value, not 768
    assert out.text.context_length == 77 and out.text.width == 512 and out.text.depth == 12
    assert out.text.vocab_size == 5000
    assert out.image.final_ln is False and out.text.final_ln is False  # euclip style kept


def test_saved_config_reloads_identically(tmp_path) -> None:
    cfg = resolve("clip", {"model.name": "mad-vit", "model.text.depth": 1})
    save(cfg, tmp_path / "config.json")
    assert load(tmp_path / "config.json") == cfg
    assert Config().model == resolve("clip").model  # the defaults are the mad-tiny shape


def test_custom_keeps_fields_and_unknown_name_lists_names() -> None:
    cfg = resolve("clip", {"model.name": "custom", "model.image.width": 40})
    assert cfg.model.name == "custom" and cfg.model.image.width == 40
    with pytest.raises(ConfigError, match="model.name.*mad-tiny.*vit-b-16.*custom"):
        resolve("clip", {"model.name": "resnet-9000"})
    assert set(NAMED_MODELS) <= set(model_names())


@pytest.mark.parametrize("name", ["mad-tiny", "mad-convnet", "mad-vit", "mad-vit-256"])
def test_mad_named_configs_build_and_run(name: str) -> None:
    model = ClipModel(resolve("clip", {"model.name": name}))
    img = model.encode_image(torch.randn(2, 3, 28, 28))
    txt = model.encode_text(torch.randint(3, 1000, (2, 16)))
    assert img.shape == txt.shape == (2, 128)


# Total parameter counts of open_clip's ViT-B-16 / ViT-B-32 (openai weights) are 149,620,737 and
# 151,277,313; ours match them exactly with learned positions, plus one curvature scalar.
@pytest.mark.parametrize(
    "name, total", [("vit-b-16", 149_620_737 + 1), ("vit-b-32", 151_277_313 + 1)]
)
def test_paper_scale_param_counts_on_meta(name: str, total: int) -> None:
    cfg = resolve("clip", {"model.name": name, "model.image.pos_embed": "learned"})
    with torch.device("meta"):
        model = ClipModel(cfg)
    info = describe(model)
    assert info["params_total"] == total
    assert model.image_size == 224 and model.context_length == 77 and model.embed_dim == 512


@pytest.mark.parametrize("name", ["vit-s-16", "vit-l-14"])
def test_other_paper_scale_build_on_meta(name: str) -> None:
    with torch.device("meta"):
        model = ClipModel(resolve("meru", {"model.name": name}))
    widths = {"vit-s-16": 384, "vit-l-14": 1024}
    assert model.visual.width == widths[name]
    assert model.text.width == 512 and len(model.text.transformer.blocks) == 12
