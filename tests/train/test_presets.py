"""Every preset trains on a tiny MAD sample with finite, falling loss and complete run outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from clipspace.train import train
from clipspace.train.logger import read_metrics
from tests.helpers.configs import tiny_config


@pytest.mark.parametrize("preset", ["clip", "euclip", "meru", "atmg"])
def test_preset_trains(preset: str, tiny_mad: Path, tmp_path: Path) -> None:
    cfg = tiny_config(preset, tiny_mad, tmp_path, optim__steps=30)
    run = train(cfg)
    records = [r for r in read_metrics(run) if "loss" in r]
    assert [r["step"] for r in records] == list(range(1, 31))
    losses = [r["loss"] for r in records]
    assert all(isinstance(v, float) and math.isfinite(v) for v in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.05, (preset, first, last)
    for key in ("lr", "samples_per_s", "logit_scale", "curv", "grad_norm"):
        assert key in records[-1]
    if preset == "meru":
        assert "loss/entailment" in records[-1] and "alpha_img" in records[-1]
    if preset == "atmg":
        assert "loss/centroid" in records[-1]
    saved = json.loads((run / "config.json").read_text())
    assert saved["preset"] == preset and saved["optim"]["steps"] == 30
    assert (run / "tokenizer.json").is_file()
    assert (run / "checkpoints" / "step_30" / "model.safetensors").is_file()


def test_bf16_on_cpu_and_validation_hook(tiny_mad: Path, tmp_path: Path) -> None:
    calls: list[int] = []

    def hook(model, step, run_dir):
        calls.append(step)
        assert run_dir == tmp_path / "run"
        return {"hook/metric": float(step)}

    cfg = tiny_config(
        "meru", tiny_mad, tmp_path, optim__steps=4, run__precision="bf16", run__eval_every=2,
        data__val=f"mad:{tiny_mad}",
    )
    run = train(cfg, hooks=[hook])
    records = read_metrics(run)
    assert calls == [2, 4]
    val = [r for r in records if "val/loss" in r]
    assert [r["step"] for r in val] == [2, 4]
    assert all(math.isfinite(r["val/loss"]) and "val/loss/entailment" in r for r in val)
    assert [r["hook/metric"] for r in records if "hook/metric" in r] == [2.0, 4.0]
    assert all(math.isfinite(r["loss"]) for r in records if "loss" in r)


def test_torch_compile_matches_eager(tiny_mad: Path, tmp_path: Path) -> None:
    """run.compile=true (torch.compile, inductor on CPU) trains the same model as eager mode:
    same losses within float32 tolerance over a few steps."""
    import shutil

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile on CPU needs a C compiler")
    eager = train(tiny_config("meru", tiny_mad, tmp_path, name="eager", optim__steps=3))
    compiled = train(tiny_config("meru", tiny_mad, tmp_path, name="compiled", optim__steps=3,
                                 run__compile=True))
    a = [r["loss"] for r in read_metrics(eager) if "loss" in r]
    b = [r["loss"] for r in read_metrics(compiled) if "loss" in r]
    assert len(a) == len(b) == 3
    assert all(math.isfinite(v) for v in b)
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-3, (a, b)
