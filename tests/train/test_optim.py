"""AdamW parameter groups, warmup-cosine schedule, gradient clipping."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from clipspace.config import OptimConfig
from clipspace.train.optim import (
    WarmupCosine,
    build_optimizer,
    clip_gradients,
    lr_factor,
    param_groups,
)


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 3)
        self.ln_final = nn.LayerNorm(3)
        self.token_embedding = nn.Embedding(10, 4)
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, 4))
        self.logit_scale = nn.Parameter(torch.tensor(2.0))
        self.curvature = nn.Module()
        self.curvature.log_value = nn.Parameter(torch.tensor(0.0))
        self.frozen = nn.Parameter(torch.ones(3, 3), requires_grad=False)


def _groups_by_wd(model: nn.Module) -> dict[float, set[str]]:
    return {g["weight_decay"]: set(g["names"]) for g in param_groups(model, 0.2)}


def test_groups_follow_the_models_declaration() -> None:
    model = Toy()
    model.no_weight_decay_names = lambda: {  # type: ignore[method-assign]
        n for n, p in model.named_parameters()
        if p.ndim < 2 or n in ("token_embedding.weight", "pos_embed")}
    by_wd = _groups_by_wd(model)
    assert by_wd[0.2] == {"proj.weight"}
    assert by_wd[0.0] == {
        "proj.bias", "ln_final.weight", "ln_final.bias", "token_embedding.weight",
        "pos_embed", "logit_scale", "curvature.log_value",
    }  # the frozen parameter is in no group


def test_groups_without_declaration_skip_only_vectors() -> None:
    by_wd = _groups_by_wd(Toy())
    assert by_wd[0.2] == {"proj.weight", "token_embedding.weight", "pos_embed"}
    assert by_wd[0.0] == {"proj.bias", "ln_final.weight", "ln_final.bias", "logit_scale",
                          "curvature.log_value"}


def test_clip_model_declares_embedding_tables() -> None:
    from clipspace.models import create_model

    model = create_model("meru", model__name="mad-vit", model__image__pos_embed="learned")
    by_wd = _groups_by_wd(model)
    assert {"text.token_embedding.weight", "text.pos_embed", "visual.pos_embed",
            "visual.class_token", "curvature.log_value", "image_map.alpha.log_value",
            "objective.logit_scale.log_value"} <= by_wd[0.0]
    assert "image_proj.weight" in by_wd[0.2] and "visual.patch_embed.weight" in by_wd[0.2]
    assert all(".ln" not in n and not n.endswith(".bias") for n in by_wd[0.2])


def test_optimizer_hyperparameters() -> None:
    cfg = OptimConfig(lr=1e-3, beta1=0.8, beta2=0.9, eps=1e-7, weight_decay=0.1)
    opt = build_optimizer(Toy(), cfg)
    assert opt.defaults["betas"] == (0.8, 0.9) and opt.defaults["eps"] == 1e-7
    assert sorted(g["weight_decay"] for g in opt.param_groups) == [0.0, 0.1]


def test_warmup_then_cosine() -> None:
    cfg = OptimConfig(lr=1.0, warmup_steps=10, steps=110, min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(60, cfg) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(110, cfg) == pytest.approx(0.1)
    mid = 10 + 25
    assert lr_factor(mid, cfg) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    const = OptimConfig(lr=1.0, warmup_steps=2, steps=10, schedule="constant")
    assert [lr_factor(s, const) for s in range(4)] == [0.5, 1.0, 1.0, 1.0]


def test_schedule_state_dict_resumes() -> None:
    cfg = OptimConfig(lr=0.5, warmup_steps=3, steps=20)
    model = Toy()
    a = WarmupCosine(build_optimizer(model, cfg), cfg)
    for _ in range(7):
        a.apply()
        a.step()
    b = WarmupCosine(build_optimizer(model, cfg), cfg)
    b.load_state_dict(a.state_dict())
    assert b.apply() == a.apply() == pytest.approx(0.5 * lr_factor(7, cfg))
    assert all(g["lr"] == pytest.approx(0.5 * lr_factor(7, cfg)) for g in b.optimizer.param_groups)


def test_clip_gradients() -> None:
    p = nn.Parameter(torch.zeros(4))
    p.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])
    norm = clip_gradients([p], 1.0)
    assert norm == pytest.approx(5.0)
    assert float(p.grad.norm()) == pytest.approx(1.0, rel=1e-4)
    p.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])
    assert clip_gradients([p], 0.0) == pytest.approx(5.0)
    assert float(p.grad.norm()) == pytest.approx(5.0)
