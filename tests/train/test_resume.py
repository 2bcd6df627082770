"""Resume: a run interrupted at any step (exception or SIGKILL) ends bit-identical to one that
never stopped (CPU, same thread count)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from clipspace.checkpoint import list_checkpoints
from clipspace.train import train
from clipspace.train.logger import read_metrics
from tests.helpers.configs import TINY, set_flags, tiny_config


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step_{step}" / "model.safetensors"))


def _assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


class _Crash(RuntimeError):
    pass


def _crash_at(step: int):
    def hook(model, at, run_dir):
        if at == step:
            raise _Crash(f"simulated crash at step {at}")
        return {}

    return hook


def test_resume_after_crash_is_bit_identical(tiny_mad: Path, tmp_path: Path) -> None:
    # 480 train samples / 32 = 15 batches per epoch: the run crosses an epoch boundary
    common = dict(optim__steps=20, run__save_every=4, run__eval_every=1, run__keep_last=2)
    never = [_crash_at(-1)]  # run.eval_every with no data.val needs a hook to run
    ref = train(tiny_config("meru", tiny_mad, tmp_path, name="ref", **common), hooks=never)
    cfg = tiny_config("meru", tiny_mad, tmp_path, name="crash", **common)
    with pytest.raises(_Crash):
        train(cfg, hooks=[_crash_at(14)])  # last checkpoint: step 12 (consumed 12 of epoch 0)
    assert [s for s, _ in list_checkpoints(tmp_path / "crash")] == [8, 12]
    with pytest.raises(_Crash):
        train(cfg, resume="latest", hooks=[_crash_at(17)])  # resumes at 12, dies at 17 (epoch 1)
    run = train(cfg, resume="latest", hooks=never)
    _assert_bit_identical(_weights(ref, 20), _weights(run, 20))
    steps = [r["step"] for r in read_metrics(run) if "loss" in r]
    assert steps == list(range(1, 21))  # metrics of the lost steps were dropped, then redone
    ref_loss = [r["loss"] for r in read_metrics(ref) if "loss" in r]
    assert [r["loss"] for r in read_metrics(run) if "loss" in r] == ref_loss


def test_resume_after_sigkill_is_bit_identical(tiny_mad: Path, tmp_path: Path) -> None:
    steps = 60
    args = [
        "--preset", "clip", "--data", f"mad:{tiny_mad}", "--output-dir", str(tmp_path),
        "--steps", str(steps), "--batch-size", "32", "--lr", "3e-3", "--warmup", "2",
        "--save-every", "3",
        *set_flags(TINY),
        "--set", "run.threads=1", "--set", "run.progress=false",
        "--set", "run.tensorboard=false", "--set", "run.keep_last=0",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipspace.cli", "train", "--name", "killed", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ},
    )
    run = tmp_path / "killed"
    deadline = time.monotonic() + 120
    while not list_checkpoints(run) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode() if proc.stderr else ""
    killed_at = list_checkpoints(run)
    assert killed_at and killed_at[-1][0] < steps
    from clipspace.cli import main

    assert main(["train", "--name", "killed", "--resume", "latest", *args]) == 0
    assert main(["train", "--name", "ref", *args]) == 0
    _assert_bit_identical(_weights(tmp_path / "ref", steps), _weights(run, steps))
