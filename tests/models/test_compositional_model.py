"""A hycoclip model on a batch of scenes: box crops and captions go through the towers with
the wholes; values and gradients finite in float32 and under bf16 autocast for degenerate boxes
(empty, the full canvas, one pixel); presets that are not compositional ignore the boxes."""

from __future__ import annotations

import pytest
import torch

from clipspace.data.mad_scenes import crop_boxes
from clipspace.models import create_model
from tests.helpers.configs import TINY

BOXES = torch.tensor([[10, 10, 10, 10],  # empty
                      [0, 0, 56, 56],  # the full canvas
                      [30, 30, 31, 31],  # one pixel
                      [5, 7, 40, 33]])


def _batch() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    scenes = torch.randn(2, 3, 56, 56, generator=g)
    crops = torch.cat([crop_boxes(scenes[0], BOXES[:2], 28), crop_boxes(scenes[1], BOXES[2:], 28)])
    wholes = torch.nn.functional.interpolate(scenes, size=28, mode="bilinear", antialias=True)
    tokens = torch.randint(3, 300, (2, 16), generator=g)
    box_tokens = torch.randint(3, 300, (4, 16), generator=g)
    return wholes, tokens, crops, box_tokens, torch.tensor([0, 0, 1, 1])


@pytest.mark.parametrize("preset", ["hycoclip", "hycoclip-euclid"])
@pytest.mark.parametrize("bf16", [False, True])
def test_degenerate_boxes_finite(preset: str, bf16: bool) -> None:
    torch.manual_seed(0)
    model = create_model(preset, **TINY, **{"loss.uncertainty": True}).train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(*_batch())
    assert "loss/box_image_text" in out and "loss/calibration_image" in out
    assert torch.isfinite(out["loss"]) and out["loss"].dtype == torch.float32
    out["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_meru_ignores_the_boxes() -> None:
    torch.manual_seed(0)
    model = create_model("meru", **TINY)
    wholes, tokens, *parts = _batch()
    with torch.no_grad():
        torch.testing.assert_close(model(wholes, tokens, *parts)["loss"],
                                   model(wholes, tokens)["loss"])
