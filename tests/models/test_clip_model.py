"""ClipModel: presets, custom loss x geometry combinations, points, scalars, param groups."""

from __future__ import annotations

import math

import pytest
import torch

from clipspace.geometry import lorentz
from clipspace.models import ClipModel, create_model
from clipspace.train.optim import param_groups

PRESETS = ["clip", "euclip", "meru", "atmg"]
#: A tiny custom architecture keeps these tests fast on a shared 2-core CPU.
TINY = {
    "model.name": "custom",
    "model.embed_dim": 32,
    "model.image.width": 8,
    "model.image.depth": 2,
    "model.text.width": 32,
    "model.text.depth": 1,
}


def _batch(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 28, 28, generator=g)
    tokens = torch.randint(3, 1000, (n, 16), generator=g)
    tokens[:, 0] = 1
    tokens[:, 9] = 2
    tokens[:, 10:] = 0
    return images, tokens


def _model(preset: str, **overrides: object) -> ClipModel:
    torch.manual_seed(0)
    return create_model(preset, **{**TINY, **overrides})


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_forward_finite_loss_and_grads(preset: str) -> None:
    model = _model(preset)
    out = model(*_batch())
    assert torch.isfinite(out["loss"]) and out["loss"].requires_grad
    for key in ("curv", "alpha_img", "alpha_txt", "logit_scale"):
        assert out[key].dim() == 0 and not out[key].requires_grad
    out["loss"].backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{preset}: no gradient for {name}"
            assert torch.isfinite(p.grad).all(), f"{preset}: non-finite gradient for {name}"


def test_clip_points_unit_norm_and_cosine_similarity() -> None:
    model = _model("clip").eval()
    images, tokens = _batch()
    with torch.no_grad():
        img, txt = model.encode_image(images), model.encode_text(tokens)
        assert torch.allclose(img.norm(dim=-1), torch.ones(len(img)), atol=1e-5)
        assert torch.allclose(model.similarity(img, txt), img @ txt.T, atol=1e-5)
    assert not model.curvature.learnable  # the sphere has no curvature parameter
    assert "loss/contrastive" in model(images, tokens)


def test_euclip_no_final_ln_and_sqrt_dim_points() -> None:
    model = _model("euclip").eval()
    assert isinstance(model.visual.ln_post, torch.nn.Identity)
    assert isinstance(model.text.ln_final, torch.nn.Identity)
    images, tokens = _batch()
    with torch.no_grad():
        img = model.encode_image(images)
        expected = model.image_features(images) / math.sqrt(model.embed_dim)
        assert torch.allclose(img, expected, atol=1e-6)
        txt = model.encode_text(tokens)
        assert torch.allclose(
            txt, model.text_features(tokens) / math.sqrt(model.embed_dim), atol=1e-6
        )
    assert not torch.allclose(img.norm(dim=-1), torch.ones(len(img)), atol=1e-2)  # no L2 norm
    assert float(model.logged_scalars()["logit_scale"]) == pytest.approx(1.0)


@pytest.mark.parametrize("preset", ["meru", "atmg"])
def test_hyperbolic_points_and_scalars(preset: str) -> None:
    model = _model(preset).eval()
    images, tokens = _batch()
    with torch.no_grad():
        img = model.encode_image(images)
        c = model.curv()
        alpha = model.image_map.alpha()
        feats = model.image_features(images)
    assert torch.isfinite(img).all()
    # exp_map0 is an isometry along rays: d(O, exp_map0(alpha f)) = |alpha f|
    d0 = lorentz.dist_to_origin(img, c)
    assert torch.allclose(d0, (alpha * feats).norm(dim=-1), rtol=1e-4, atol=1e-5)
    assert float(alpha) == pytest.approx(1 / math.sqrt(model.embed_dim), rel=1e-5)
    expect_c, learnable = (1.0, True) if preset == "meru" else (0.1, False)
    assert float(c) == pytest.approx(expect_c, rel=1e-5)
    assert model.curvature.learnable == learnable


def test_alpha_is_capped_at_one() -> None:
    model = _model("meru")
    with torch.no_grad():
        model.image_map.alpha.log_value.fill_(5.0)
    assert float(model.image_map.alpha().detach()) <= 1.0
    assert float(model.logged_scalars()["alpha_img"]) <= 1.0


@pytest.mark.parametrize("preset", PRESETS)
def test_tangent_then_to_points_equals_encode(preset: str) -> None:
    model = _model(preset).eval()
    images, tokens = _batch()
    with torch.no_grad():
        assert torch.allclose(
            model.to_points(model.encode_image(images, tangent=True)),
            model.encode_image(images),
            atol=1e-6,
        )
        assert torch.allclose(
            model.to_points(model.encode_text(tokens, tangent=True)),
            model.encode_text(tokens),
            atol=1e-6,
        )


def _train_steps(model: ClipModel, steps: int = 3) -> list[float]:
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3)
    images, tokens = _batch(8)
    losses = []
    for _ in range(steps):
        out = model(images, tokens)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    return losses


@pytest.mark.parametrize(
    "preset, overrides, terms",
    [
        (
            "clip",
            {
                "geometry.name": "euclidean",
                "loss.contrastive": "angle",
                "loss.centroid_weight": 0.5,
            },
            {"loss/contrastive", "loss/centroid"},
        ),
        ("euclip", {"loss.entail_weight": 0.2}, {"loss/contrastive", "loss/entailment"}),
        (
            "meru",
            {"loss.contrastive": "siglip", "model.image.kind": "vit", "model.image.width": 32},
            {"loss/contrastive"},
        ),
    ],
)
def test_custom_combinations_train(preset: str, overrides: dict, terms: set[str]) -> None:
    model = _model(preset, **overrides)
    out = model(*_batch())
    assert terms <= set(out)
    losses = _train_steps(model, 4)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]  # the same batch: a few AdamW steps must reduce the loss


def test_no_weight_decay_names_feed_the_optimizer() -> None:
    model = _model(
        "meru",
        **{"model.image.kind": "vit", "model.image.width": 32, "model.image.pos_embed": "learned"},
    )
    decay, no_decay = param_groups(model, 0.2)
    assert set(no_decay["names"]) == model.no_weight_decay_names()
    assert decay["weight_decay"] == 0.2 and no_decay["weight_decay"] == 0.0
    skip = set(no_decay["names"])
    for name in (
        "curvature.log_value",
        "image_map.alpha.log_value",
        "text_map.alpha.log_value",
        "objective.logit_scale.log_value",
        "visual.class_token",
        "visual.pos_embed",
        "text.pos_embed",
        "text.token_embedding.weight",
        "visual.ln_post.weight",
        "text.transformer.blocks.0.attn.qkv.bias",
    ):
        assert name in skip, name
    for name in (
        "visual.transformer.blocks.0.attn.qkv.weight",
        "image_proj.weight",
        "visual.patch_embed.weight",
    ):
        assert name in decay["names"], name
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(decay["names"]) | skip == trainable
    assert not set(decay["names"]) & skip
    assert len(decay["params"]) == len(decay["names"])


def test_bf16_autocast_points_are_float32() -> None:
    model = _model("meru")
    images, tokens = _batch(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(images, tokens)
        img = model.encode_image(images)
    assert img.dtype == torch.float32
    assert torch.isfinite(out["loss"])


def test_eot_id_controls_text_pooling() -> None:
    images, tokens = _batch(2)
    torch.manual_seed(0)
    a = create_model("clip", eot_id=2, **TINY)
    torch.manual_seed(0)
    b = create_model("clip", eot_id=7, **TINY)  # absent: falls back to the last non-pad token
    with torch.no_grad():
        t = tokens.clone()
        t[:, 9] = 2  # the EOT is the last non-pad token, so both pool at position 9
        assert torch.allclose(a.encode_text(t), b.encode_text(t), atol=1e-6)
        t[:, 4] = 2  # an earlier EOT: only ``a`` moves to position 4
        assert not torch.allclose(a.encode_text(t), b.encode_text(t), atol=1e-4)
