"""2-process gloo data parallelism matches one process on the same global batch."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from clipspace import config as C
from clipspace.train.logger import read_metrics
from tests.helpers.configs import tiny_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, cfg_dict: dict) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
        WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
    )
    import clipspace.train.engine as engine
    from clipspace.train import train

    flat = engine.average_gradients
    calls = []

    def spy(params, info) -> None:  # counts the engine's flat all-reduces
        calls.append(1)
        flat(params, info)

    engine.average_gradients = spy
    cfg = C.from_dict(cfg_dict)
    train(cfg)
    Path(cfg.run.output_dir, f"flat-allreduce-{rank}.txt").write_text(str(len(calls)))


@pytest.mark.parametrize(("preset", "accum"), [("clip", 1), ("meru", 1), ("atmg", 1),
                                               ("meru", 2)])
def test_two_process_gloo_matches_one_process(preset: str, accum: int, tiny_mad: Path,
                                              tmp_path: Path) -> None:
    """accum 1: DistributedDataParallel; accum 2: the gradient-cached path's flat all-reduce."""
    steps = 5
    single = tiny_config(preset, tiny_mad, tmp_path, name="single", optim__steps=steps,
                         optim__accum_steps=accum)
    from clipspace.train import train

    train(single)
    ddp = tiny_config(preset, tiny_mad, tmp_path, name="ddp", optim__steps=steps,
                      optim__accum_steps=accum)
    mp.spawn(_worker, args=(2, _free_port(), C.to_dict(ddp)), nprocs=2, join=True)
    # DDP reduces inside the backward pass; the cached path needs the engine's all-reduce
    for rank in range(2):
        calls = int((tmp_path / f"flat-allreduce-{rank}.txt").read_text())
        assert calls == (0 if accum == 1 else steps), (rank, calls)
    one = [r for r in read_metrics(tmp_path / "single") if "loss" in r]
    two = [r for r in read_metrics(tmp_path / "ddp") if "loss" in r]
    assert len(one) == len(two) == steps
    for a, b in zip(one, two, strict=True):
        for key in ("loss", "loss/contrastive", "loss/entailment", "curv", "logit_scale"):
            if key in a:
                assert abs(a[key] - b[key]) < 1e-5, (a["step"], key, a[key], b[key])
    # only rank 0 wrote, and the final weights agree too
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == sorted(
        p.name for p in (tmp_path / "single").iterdir()
    )
    w1 = load_file(str(tmp_path / "single" / "checkpoints" / f"step_{steps}" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "ddp" / "checkpoints" / f"step_{steps}" / "model.safetensors"))
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], atol=1e-5, rtol=0, msg=name)


def test_two_process_lora_adaptation_matches_one_process(tiny_mad: Path, tmp_path: Path) -> None:
    """A pretrained clip moved into meru with LoRA (models.adapt) under DDP: frozen base
    parameters stay out of the reducer; the trained part agrees with one process."""
    pytest.importorskip("peft")
    from clipspace.train import train
    from tests.helpers.runs import tiny_run

    base = tiny_run(tmp_path / "base", tiny_mad, "clip")
    over = {"optim__steps": 4, "adapt__base": str(base), "adapt__lora_r": 4}
    train(tiny_config("meru", tiny_mad, tmp_path, name="single", **over))
    ddp = tiny_config("meru", tiny_mad, tmp_path, name="ddp", **over)
    mp.spawn(_worker, args=(2, _free_port(), C.to_dict(ddp)), nprocs=2, join=True)
    one = [r["loss"] for r in read_metrics(tmp_path / "single") if "loss" in r]
    two = [r["loss"] for r in read_metrics(tmp_path / "ddp") if "loss" in r]
    assert len(one) == 4 and max(abs(a - b) for a, b in zip(one, two, strict=True)) < 1e-5
    w1 = load_file(str(tmp_path / "single" / "checkpoints" / "step_4" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "ddp" / "checkpoints" / "step_4" / "model.safetensors"))
    assert w1.keys() == w2.keys() and any(".lora_B." in k for k in w1)
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], atol=1e-5, rtol=0, msg=name)
