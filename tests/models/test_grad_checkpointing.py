"""model.grad_checkpointing: each transformer block under torch.utils.checkpoint in training.

Same loss and gradients as without; fewer tensors saved for backward; off in eval mode and under
no_grad; the config key round-trips through save/load and reaches both towers.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import clipspace.models.vit as vit_module
from clipspace.cli import main
from clipspace.config import load, resolve, save
from clipspace.models import ClipModel, create_model
from clipspace.train.logger import read_metrics
from tests.helpers.configs import TINY, set_flags

#: TINY with two blocks per tower, so that checkpointing covers a non-pooled and a pooled block
SHAPE = {**TINY, "model.image.depth": 2, "model.text.depth": 2}


def _batch(n: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 28, 28, generator=g)
    tokens = torch.randint(3, 512, (n, 16), generator=g)
    tokens[:, 0] = 1
    tokens[torch.arange(n), torch.tensor([4, 9, 15, 6, 11])[:n]] = 2  # end tokens
    return images, tokens


def _model(preset: str, checkpointing: bool, **over: object) -> ClipModel:
    torch.manual_seed(0)
    return create_model(preset, **{**SHAPE, "model.grad_checkpointing": checkpointing, **over})


def _loss_and_grads(model: ClipModel) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.train()
    model.zero_grad()
    loss = model(*_batch())["loss"]
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                           if p.grad is not None}


def _count_checkpoints(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = vit_module.checkpoint

    def counting(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        assert kwargs.get("use_reentrant") is False
        return real(*args, **kwargs)

    monkeypatch.setattr(vit_module, "checkpoint", counting)
    return calls


@pytest.mark.parametrize("preset", ["clip", "meru"])
def test_same_loss_and_gradients(preset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _model(preset, False)
    ckpt = _model(preset, True)
    ckpt.load_state_dict(plain.state_dict())
    loss0, grads0 = _loss_and_grads(plain)
    calls = _count_checkpoints(monkeypatch)
    loss1, grads1 = _loss_and_grads(ckpt)
    assert len(calls) == 4  # two blocks in each tower
    assert torch.equal(loss0, loss1) or abs(float(loss0 - loss1)) < 1e-6
    assert grads0.keys() == grads1.keys() and len(grads0) > 10
    for name, g in grads0.items():
        torch.testing.assert_close(grads1[name], g, atol=1e-6, rtol=1e-5, msg=name)
    # the towers' block parameters do get gradients through the recomputation
    assert grads1["visual.transformer.blocks.0.attn.qkv.weight"].abs().sum() > 0
    assert grads1["text.transformer.blocks.0.mlp.fc1.weight"].abs().sum() > 0


def _saved_numel(model: nn.Module, images: torch.Tensor) -> int:
    """Elements of the tensors autograd keeps for backward outside checkpointed regions."""
    total = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        total[0] += t.numel()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(images).sum().backward()
    return total[0]


def test_vit_saves_fewer_activations() -> None:
    torch.manual_seed(0)
    tower = vit_module.VisionTransformer(28, 4, 32, depth=4, heads=2).train()
    images = torch.randn(4, 3, 28, 28)
    without = _saved_numel(tower, images)
    tower.set_grad_checkpointing(True)
    with_ckpt = _saved_numel(tower, images)
    assert with_ckpt < without / 3, (with_ckpt, without)


def test_off_in_eval_and_no_grad(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model("clip", True)
    assert model.visual.transformer.grad_checkpointing
    assert model.text.transformer.grad_checkpointing
    calls = _count_checkpoints(monkeypatch)
    images, tokens = _batch()
    model.eval()
    out = model(images, tokens)["loss"]  # eval mode, gradients on
    assert out.requires_grad and not calls
    model.train()
    with torch.no_grad():
        model(images, tokens)
    assert not calls
    model(images, tokens)
    assert len(calls) == 4
    model.set_grad_checkpointing(False)
    model(images, tokens)
    assert len(calls) == 4


def test_default_off_and_setter_on_towers() -> None:
    model = _model("clip", False)
    assert not model.visual.transformer.grad_checkpointing
    assert not model.text.transformer.grad_checkpointing
    model.set_grad_checkpointing()
    assert model.visual.transformer.grad_checkpointing
    assert model.text.transformer.grad_checkpointing


def test_convnet_image_tower_ignores_flag() -> None:
    model = _model("clip", True, **{"model.image.kind": "convnet", "model.image.width": 16})
    assert model.text.transformer.grad_checkpointing
    out = model.train()(*_batch())["loss"]
    out.backward()
    assert torch.isfinite(out)


def test_config_key_round_trips(tmp_path: Path) -> None:
    assert resolve("clip").model.grad_checkpointing is False
    cfg = resolve("clip", {**SHAPE, "model.grad_checkpointing": "true"})
    assert cfg.model.grad_checkpointing is True
    save(cfg, tmp_path / "config.json")
    back = load(tmp_path / "config.json")
    assert back.model.grad_checkpointing is True
    model = create_model(back)
    assert model.visual.transformer.grad_checkpointing
    assert model.text.transformer.grad_checkpointing


def test_training_smoke_with_checkpointing_and_chunked_loss(tiny_mad: Path,
                                                            tmp_path: Path) -> None:
    """``clipspace train --set model.grad_checkpointing=true --set loss.chunk_size=5``: three
    steps of the tiny test model (the loss moves, every logged loss is finite)."""
    code = main(["train", "--data", f"mad:{tiny_mad}", "--output-dir", str(tmp_path),
                 "--name", "gc", "--steps", "3", "--batch-size", "16", *set_flags(TINY),
                 "--set", "model.grad_checkpointing=true", "--set", "loss.chunk_size=5",
                 "--set", "run.progress=false", "--set", "run.tensorboard=false",
                 "--set", "run.threads=1", "--set", "run.log_every=1"])
    assert code == 0
    cfg = load(tmp_path / "gc" / "config.json")
    assert cfg.model.grad_checkpointing is True and cfg.loss.chunk_size == 5
    losses = [r["loss"] for r in read_metrics(tmp_path / "gc") if "loss" in r]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert len(set(losses)) > 1
