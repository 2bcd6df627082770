"""Gradient accumulation (k micro-batches, all samples stay negatives) equals one big batch."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch

from clipspace.checkpoint import load_weights
from clipspace.data.build import build_dataset
from clipspace.data.collate import Collate
from clipspace.data.tokenizer import get_tokenizer
from clipspace.models import create_model
from clipspace.train import train
from clipspace.train.accumulation import accumulated_step, plain_step
from tests.helpers.configs import tiny_config


def _batch(cfg, tiny_mad: Path, n: int) -> dict:
    ds = build_dataset(cfg.data.train, cfg.data, "train")
    tok = get_tokenizer(tiny_mad, context_length=cfg.model.text.context_length)
    return Collate(tok)([ds[i] for i in range(n)])


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("preset", ["clip", "meru", "atmg"])
def test_accumulated_gradients_equal_big_batch(preset: str, tiny_mad: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = tiny_config(preset, tiny_mad, tmp_path)
    model = create_model(cfg)
    batch = _batch(cfg, tiny_mad, 24)
    out_big = plain_step(model, batch["image"], batch["text"], contextlib.nullcontext)
    big = _grads(model)
    model.zero_grad(set_to_none=True)
    out_acc = accumulated_step(model, batch["image"], batch["text"], 4, contextlib.nullcontext)
    acc = _grads(model)
    assert big.keys() == acc.keys()
    # the learnable scalars are among the compared gradients (counted once, not k times)
    assert any("logit_scale" in n for n in acc)
    if preset == "meru":
        assert any("curv" in n for n in acc)
    torch.testing.assert_close(out_acc["loss"], out_big["loss"], atol=1e-5, rtol=1e-5)
    for name in big:
        torch.testing.assert_close(acc[name], big[name], atol=1e-5, rtol=1e-4, msg=name)


def test_accumulated_training_matches(tiny_mad: Path, tmp_path: Path) -> None:
    runs = {}
    for k in (1, 4):
        cfg = tiny_config("meru", tiny_mad, tmp_path, name=f"k{k}", optim__steps=3,
                          optim__accum_steps=k)
        runs[k] = train(cfg)
    cfg = tiny_config("meru", tiny_mad, tmp_path)
    a, b = create_model(cfg), create_model(cfg)
    load_weights(a, runs[1] / "checkpoints" / "step_3")
    load_weights(b, runs[4] / "checkpoints" / "step_3")
    sa, sb = a.state_dict(), b.state_dict()
    for name in sa:
        torch.testing.assert_close(sb[name], sa[name], atol=1e-5, rtol=0, msg=name)
