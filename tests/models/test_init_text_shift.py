"""model.init_text_shift: a trainable text-projection bias of that norm at initialisation (a
large modality gap at step 0, Two Effects Fig. 7b); 0 keeps the projection bias-free."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clipspace.analysis.gap import gap_stats
from clipspace.config import ConfigError
from clipspace.models import create_model, save_pretrained
from tests.helpers.configs import TINY


def model(shift: float, seed: int = 0):
    torch.manual_seed(seed)
    return create_model("clip", **TINY, **{"model.init_text_shift": shift}).eval()


def test_zero_shift_has_no_bias() -> None:
    assert model(0.0).text_proj.bias is None


def test_bias_has_the_asked_norm_and_shifts_every_text_feature() -> None:
    m = model(25.0)
    bias = m.text_proj.bias
    assert float(bias.detach().norm()) == pytest.approx(25.0, rel=1e-5)
    tokens = torch.randint(3, 100, (6, 8))
    with torch.no_grad():
        diff = m.text_features(tokens) - torch.nn.functional.linear(
            m.text(tokens), m.text_proj.weight)
    assert torch.allclose(diff, bias.expand_as(diff), atol=1e-5)
    assert "text_proj.bias" in m.no_weight_decay_names()  # decay would close the gap by itself
    assert bias.requires_grad


def test_same_seed_same_direction_and_a_larger_gap() -> None:
    assert torch.equal(model(10.0, 1).text_proj.bias, model(10.0, 1).text_proj.bias)
    images, tokens = torch.randn(32, 3, 28, 28), torch.randint(3, 100, (32, 8))
    with torch.no_grad():
        plain, shifted = model(0.0), model(50.0)
        gap0 = gap_stats(plain.encode_image(images), plain.encode_text(tokens))["l2m"]
        gap1 = gap_stats(shifted.encode_image(images), shifted.encode_text(tokens))["l2m"]
    assert gap1 > gap0


def test_saved_model_loads_with_its_bias(tmp_path: Path) -> None:
    m = model(7.0)
    loaded = create_model(pretrained=str(save_pretrained(m, tmp_path / "m")))
    assert torch.equal(loaded.text_proj.bias, m.text_proj.bias)


def test_negative_shift_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="model.init_text_shift"):
        create_model("clip", **TINY, **{"model.init_text_shift": -1.0})
