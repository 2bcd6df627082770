"""Objective: keys per configuration, similarity, logit scale, errors."""

from __future__ import annotations

import pytest
import torch

from clipspace.geometry import get_geometry
from clipspace.losses import (
    Objective,
    angle_loss,
    centroid_loss,
    entailment_loss,
    infonce,
    pairwise_logits,
)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return 0.5 * torch.randn(4, 6, generator=g), 0.5 * torch.randn(4, 6, generator=g)


@pytest.mark.parametrize(
    ("kwargs", "keys"),
    [
        ({"geometry": "sphere"}, {"loss/contrastive"}),
        ({"geometry": "sphere", "contrastive": "siglip"}, {"loss/contrastive"}),
        (
            {"geometry": "lorentz", "logit": "neg_dist", "entail_weight": 0.2},
            {"loss/contrastive", "loss/entailment"},
        ),
        (
            {"geometry": "lorentz", "contrastive": "angle", "centroid_weight": 0.5},
            {"loss/contrastive", "loss/centroid"},
        ),
        ({"geometry": "euclidean", "contrastive": "none", "entail_weight": 1.0},
         {"loss/entailment"}),
    ],
)
def test_keys_per_configuration(kwargs: dict, keys: set[str]) -> None:
    obj = Objective(**kwargs)
    img, txt = _batch()
    out = obj(img.requires_grad_(), txt, 1.0)
    assert set(out) == keys | {"loss", "logit_scale"}
    assert not out["logit_scale"].requires_grad
    assert out["logit_scale"].dtype == torch.float32
    out["loss"].backward()
    assert torch.isfinite(img.grad).all()


def test_total_is_weighted_sum_of_terms() -> None:
    g = get_geometry("lorentz")
    obj = Objective(g, "infonce", "neg_dist", logit_scale=5.0, entail_weight=0.2,
                    centroid_weight=0.5, centroid_p=1.5, centroid_q=0.3)
    img, txt = _batch()
    out = obj(img, txt, 0.8)
    c = infonce(5.0 * pairwise_logits("neg_dist", img, txt, g, 0.8))
    e = entailment_loss(txt, img, g, 0.8)
    m = centroid_loss(img, txt, g, 0.8, 1.5, 0.3)
    torch.testing.assert_close(out["loss/contrastive"], c)
    torch.testing.assert_close(out["loss/entailment"], e)
    torch.testing.assert_close(out["loss/centroid"], m)
    torch.testing.assert_close(out["loss"], c + 0.2 * e + 0.5 * m)
    assert out["logit_scale"].item() == pytest.approx(5.0, rel=1e-5)


def test_angle_contrastive_matches_angle_loss() -> None:
    g = get_geometry("euclidean")
    obj = Objective(g, "angle", logit_scale=7.0)
    img, txt = _batch()
    torch.testing.assert_close(obj(img, txt)["loss"], angle_loss(img, txt, g, 1.0, 7.0))


def test_siglip_bias_is_learnable_and_used() -> None:
    obj = Objective("sphere", "siglip", siglip_bias=-3.0, logit_scale=10.0)
    assert obj.siglip_bias is not None and obj.siglip_bias.requires_grad
    img, txt = _batch()
    l1 = obj(img, txt)["loss"]
    l1.backward()
    assert obj.siglip_bias.grad is not None and obj.siglip_bias.grad.abs() > 0
    assert obj.logit_scale.log_value.grad is not None
    with torch.no_grad():
        obj.siglip_bias.fill_(-5.0)
    assert not torch.isclose(obj(img, txt)["loss"], l1)


def test_logit_scale_clamped_and_fixed() -> None:
    obj = Objective("sphere", logit_scale=500.0, max_logit_scale=100.0, learn_logit_scale=False)
    out = obj(*_batch())
    assert out["logit_scale"].item() == pytest.approx(100.0, rel=1e-5)
    assert not any(p.requires_grad for p in obj.parameters())


def test_similarity_shape_and_kind() -> None:
    img, txt = torch.randn(3, 6), torch.randn(5, 6)
    obj = Objective("euclidean", logit="neg_sqdist")
    sim = obj.similarity(img, txt)
    assert sim.shape == (3, 5)
    torch.testing.assert_close(sim, -torch.cdist(img, txt) ** 2, rtol=1e-4, atol=1e-4)
    ang = Objective("lorentz", "angle").similarity(img, txt, 1.0)
    assert ang.shape == (3, 5)
    torch.testing.assert_close(ang, get_geometry("lorentz").pairwise_ext_angle(img, txt, 1.0))
    # larger = better: an image beyond its text on the ray scores highest for that text
    t = torch.nn.functional.normalize(torch.randn(4, 6), dim=-1)
    s2 = Objective("lorentz", "angle").similarity(2 * t, t, 1.0)
    assert (s2.argmax(dim=1) == torch.arange(4)).all()


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="infonce"):
        Objective("sphere", contrastive="clip")
    with pytest.raises(ValueError, match="cosine"):
        Objective("sphere", logit="l2")
    with pytest.raises(ValueError):
        Objective("hyperbolic")
    for kw in ({"contrastive": "angle"}, {"entail_weight": 0.1}, {"centroid_weight": 0.1}):
        with pytest.raises(ValueError, match="origin"):
            Objective("sphere", **kw)


def test_bf16_autocast_float32_terms() -> None:
    obj = Objective("lorentz", "infonce", "neg_dist", entail_weight=0.2)
    img, txt = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = obj(img.bfloat16(), txt.bfloat16(), torch.tensor(1.0))
    assert all(v.dtype == torch.float32 for v in out.values())
    ref = obj(img.bfloat16().float(), txt.bfloat16().float(), 1.0)
    torch.testing.assert_close(out["loss"], ref["loss"])
