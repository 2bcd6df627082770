"""models.adapt: a pretrained model moved into another geometry keeps its towers; LoRA adapters
(peft) start as the identity and merge back exactly; unlocked towers and locked layers train as
configured; bad combinations name their keys."""

from __future__ import annotations

import pytest
import torch

from clipspace.config import ConfigError, resolve
from clipspace.models import create_model
from clipspace.models.adapt import adapt_model, has_lora, merge_lora, tower_blocks
from tests.helpers.configs import TINY

VIT = {**TINY, "model.image.kind": "vit", "model.image.depth": 2, "model.image.width": 32,
       "model.image.patch_size": 7, "model.text.depth": 2}


def _base(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("clip", **VIT).eval()


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 3, 28, 28, generator=g), torch.randint(3, 500, (3, 16), generator=g)


def _trainable(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_lora_trains_adapters_projections_and_geometry_only() -> None:
    cfg = resolve("meru", {**VIT, "adapt.base": "x", "adapt.lora_r": 4})
    model = adapt_model(_base(), cfg)
    names = _trainable(model)
    assert model.config.geometry.name == "lorentz" and model.config.model.image.kind == "vit"
    tower = {n for n in names if n.startswith(("visual.", "text."))}
    assert tower and all(".lora_A." in n or ".lora_B." in n for n in tower)
    # every linear layer of the attention and MLP of both towers' blocks
    adapted = {n.split(".lora_")[0] for n in tower}
    assert len(adapted) == 4 * (2 + 2)
    assert {"image_proj.weight", "text_proj.weight", "curvature.log_value",
            "objective.logit_scale.log_value"} <= names
    assert any(n.startswith("image_map.") for n in names)  # MERU's learnable alpha


def test_lora_starts_as_the_base_and_merges_exactly() -> None:
    images, tokens = _inputs()
    base = _base()
    with torch.no_grad():
        before = base.image_features(images), base.text_features(tokens)
    cfg = resolve("euclip", {**VIT, "adapt.base": "x", "adapt.lora_r": 4})
    model = adapt_model(base, cfg)
    with torch.no_grad():  # B = 0 at the start: the adapted model is the base
        torch.testing.assert_close(model.image_features(images), before[0])
        torch.testing.assert_close(model.text_features(tokens), before[1])
        for n, p in model.named_parameters():
            if ".lora_B." in n:
                p.normal_(std=0.2)  # as if trained
        adapted = model.encode_image(images), model.encode_text(tokens)
    assert not torch.allclose(adapted[0], model.to_points(before[0] / 8))
    assert merge_lora(model) == 16 and not has_lora(model)
    assert model.config.adapt.lora_r == 0
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(images), adapted[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.encode_text(tokens), adapted[1], atol=1e-5, rtol=1e-5)
    assert all(type(m) is torch.nn.Linear for blk in tower_blocks(model.visual)
               for m in blk.modules() if isinstance(m, torch.nn.Linear))


def test_lora_on_a_convnet_tower_adapts_its_convolutions() -> None:
    conv = {**TINY, "model.image.kind": "convnet", "model.image.width": 16}
    torch.manual_seed(0)
    base = create_model("clip", **conv)  # MAD ConvNet image tower
    convs = [n for n, m in base.visual.named_modules() if isinstance(m, torch.nn.Conv2d)]
    model = adapt_model(base, resolve("clip", {**conv, "adapt.base": "x", "adapt.lora_r": 2}))
    lora = {n.split(".lora_")[0] for n in _trainable(model) if n.startswith("visual.")}
    assert lora == {f"visual.{n}" for n in convs}


def test_unlock_with_locked_layers() -> None:
    cfg = resolve("meru", {**VIT, "adapt.base": "x", "adapt.unlock": "image",
                           "adapt.lock_layers": 1})
    model = adapt_model(_base(), cfg)
    names = _trainable(model)
    assert not any(n.startswith("text.") for n in names)
    blocks = tower_blocks(model.visual)
    first, second = blocks[0], blocks[1]
    assert not any(p.requires_grad for p in first.parameters())
    assert all(p.requires_grad for p in second.parameters())
    embeddings = [n for n in names if n.startswith("visual.") and "blocks" not in n]
    assert set(embeddings) == {"visual.ln_post.weight", "visual.ln_post.bias"}  # no embedding


@pytest.mark.parametrize("over,key", [
    ({"adapt.lora_r": 4, "adapt.unlock": "text"}, "adapt.unlock"),
    ({"adapt.lock_layers": 1}, "adapt.lock_layers"),
    ({"adapt.unlock": "text", "adapt.lock_layers": 9}, "adapt.lock_layers"),
    ({"adapt.lora_r": 4, "adapt.lora_targets": "nothing_here"}, "adapt.lora_targets"),
])
def test_bad_adaptation_names_the_key(over: dict, key: str) -> None:
    cfg = resolve("meru", {**VIT, "adapt.base": "x", **over})
    with pytest.raises(ConfigError, match=key):
        adapt_model(_base(), cfg)


def test_custom_targets_pick_by_suffix() -> None:
    cfg = resolve("clip", {**VIT, "adapt.base": "x", "adapt.lora_r": 2,
                           "adapt.lora_targets": "qkv"})
    model = adapt_model(_base(), cfg)
    adapted = {n.split(".lora_")[0] for n in _trainable(model) if ".lora_" in n}
    assert adapted and all(n.endswith(".attn.qkv") for n in adapted)
