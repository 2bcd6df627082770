"""clipspace plan: parameters counted exactly, activations measured by saved tensors and linear
in the batch, the state sharded by FSDP only, checkpointing estimated below the full count, and
bad input exiting 2 with the flag named."""

from __future__ import annotations

import json

import pytest
import torch

from clipspace.cli import main
from clipspace.config import ConfigError, resolve
from clipspace.models import create_model, transformer_blocks
from clipspace.train.plan import _one_pass, count_params, plan_memory

VIT = {"model.name": "mad-vit", "data.batch_size": 64, "run.precision": "fp32"}


def test_parameters_add_up_to_the_model() -> None:
    cfg = resolve("meru", overrides=VIT)
    model = create_model(cfg)
    counts = count_params(model)
    assert sum(counts.values()) == sum(p.numel() for p in model.parameters())
    assert counts["image"] == sum(p.numel() for p in model.visual.parameters()) > 0
    assert counts["text"] == sum(p.numel() for p in model.text.parameters()) > 0


def test_activations_are_linear_in_the_batch() -> None:
    """The profile from 1, 2 and 3 samples predicts the saved bytes of a 5-sample pass exactly
    (activations linear in the batch, the loss's logits quadratic)."""
    cfg = resolve("clip", overrides=VIT)
    plan = plan_memory(cfg)
    model = create_model(cfg)
    model.train()
    torch.manual_seed(0)
    measured = _one_pass(model, 5, cfg, torch.autocast("cpu", enabled=False)).total
    act = plan.activations
    assert act.bytes(5, checkpointing=False) + act.per_pair * 25 == measured
    assert act.per_pair >= 4  # at least the float32 logit itself
    # a block's input: (tokens x width) float32 per sample; image: 7 x 7 patches + class token,
    # text: 16 positions; 3 + 3 blocks of width 128
    tokens = [(28 // 4) ** 2 + 1] * 3 + [16] * 3
    assert act.block_input_per_sample == [n * 128 * 4 for n in tokens]


def test_fsdp_shards_the_state_and_checkpointing_saves_memory() -> None:
    cfg = resolve("meru", overrides={**VIT, "data.batch_size": 256})
    ddp, fsdp = plan_memory(cfg, 4, "ddp"), plan_memory(cfg, 4, "fsdp")
    n = sum(ddp.params.values())
    assert ddp.state_bytes() == {"weights": 4 * n, "gradients": 4 * n, "optimizer": 8 * n}
    assert fsdp.state_bytes()["optimizer"] == -(-8 * n // 4)
    assert ddp.per_gpu_batch == 64
    act = ddp.activations
    assert len(act.block_per_sample) >= 3  # blocks of both towers were seen
    assert act.bytes(64, checkpointing=True) < act.bytes(64, checkpointing=False)
    rows = dict(ddp.rows())
    assert rows["total"] == sum(ddp.state_bytes().values()) + rows[
        "activations (64 samples)"] + ddp.logit_bytes()
    assert ddp.logit_bytes() == act.per_pair * 64 * 256


def test_chunks_and_the_ring_shrink_the_logits() -> None:
    """Chunked rows: chunk x B; SigLIP's ring exchange: b x b (one rank's texts at a time)."""
    base = {**VIT, "data.batch_size": 256, "loss.contrastive": "siglip"}
    plain = plan_memory(resolve("clip", overrides=base), 4)
    chunked = plan_memory(resolve("clip", overrides={**base, "loss.chunk_size": 16}), 4)
    ring = plan_memory(resolve("clip", overrides={**base, "loss.siglip_exchange": "ring"}), 4)
    per_pair = plain.activations.per_pair
    assert plain.logit_bytes() == per_pair * 64 * 256
    assert chunked.logit_bytes() == per_pair * 16 * 256
    assert ring.logit_bytes() == per_pair * 64 * 64


def test_blocks_are_the_transformer_blocks() -> None:
    model = create_model(resolve("clip", overrides=VIT))
    cfg = resolve("clip", overrides=VIT)
    assert len(transformer_blocks(model)) == cfg.model.image.depth + cfg.model.text.depth


def test_cli_prints_the_plan_and_json(capsys) -> None:
    args = ["plan", "--preset", "meru", "--model", "mad-vit", "--batch-size", "64",
            "--world-size", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "32 samples per GPU" in out and "activations with model.grad_checkpointing" in out
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["per_gpu_batch"] == 32 and data["bytes"]["total"] > 0


@pytest.mark.parametrize(("extra", "word"), [
    (["--world-size", "0"], "--world-size"),
    (["--world-size", "128"], "data.batch_size"),
])
def test_bad_input_exits_2(extra, word, capsys) -> None:
    assert main(["plan", "--model", "mad-vit", "--batch-size", "64", *extra]) == 2
    assert word in capsys.readouterr().err
    with pytest.raises(ConfigError):
        plan_memory(resolve("clip", overrides=VIT), 1, "zero")
