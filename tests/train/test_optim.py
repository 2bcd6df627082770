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
    decays,
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


def test_groups_decay_only_weight_matrices() -> None:
    model = Toy()
    groups = param_groups(model, 0.2)
    names = {id(p): n for n, p in model.named_parameters()}
    by_wd = {g["weight_decay"]: {names[id(p)] for p in g["params"]} for g in groups}
    assert by_wd[0.2] == {"proj.weight"}
    assert by_wd[0.0] == {
        "proj.bias", "ln_final.weight", "ln_final.bias", "token_embedding.weight",
        "pos_embed", "logit_scale", "curvature.log_value",
    }
    assert not decays("visual.norm.weight", torch.zeros(3, 3))
    assert decays("visual.blocks.0.mlp.fc1.weight", torch.zeros(3, 3))


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
