"""``clipspace train``: flags map to config keys; bad input exits 2 before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipspace.cli import main
from tests.helpers.configs import TINY, set_flags


def _args(mad: Path, out: Path, name: str = "r", steps: int = 2) -> list[str]:
    return [
        "train", "--preset", "euclip", "--data", f"mad:{mad}", "--output-dir", str(out),
        "--name", name, "--steps", str(steps), "--batch-size", "16", "--lr", "2e-3",
        "--seed", "7", "--precision", "fp32", "--workers", "0",
        *set_flags(TINY),
        "--set", "run.progress=false", "--set", "run.tensorboard=false",
    ]


def test_flags_map_to_config_and_overwrite_is_refused(
    tiny_mad: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_args(tiny_mad, tmp_path)) == 0
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["preset"] == "euclip" and saved["optim"]["steps"] == 2
    assert saved["optim"]["lr"] == 2e-3 and saved["data"]["batch_size"] == 16
    assert saved["run"]["seed"] == 7 and saved["run"]["precision"] == "fp32"
    assert saved["data"]["train"] == f"mad:{tiny_mad}"
    before = (tmp_path / "r" / "checkpoints" / "step_2" / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(_args(tiny_mad, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--resume" in err and "--overwrite" in err
    assert (tmp_path / "r" / "checkpoints" / "step_2" / "model.safetensors").read_bytes() == before
    # resume to more steps continues; overwrite starts again
    assert main([*_args(tiny_mad, tmp_path, steps=3), "--resume", "latest"]) == 0
    assert (tmp_path / "r" / "checkpoints" / "step_3").is_dir()
    assert main([*_args(tiny_mad, tmp_path), "--overwrite"]) == 0
    assert not (tmp_path / "r" / "checkpoints" / "step_3").exists()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--set", "optim.nope=1"], "optim.nope"),
        (["--set", "optim.lr=fast"], "optim.lr"),
        (["--set", "loss.logit=bogus"], "loss.logit"),
        (["--set", "geometry.name=sphere", "--set", "loss.entail_weight=0.2"], "entail_weight"),
        (["--set", "optim.accum_steps=3"], "accum_steps"),
        (["--data", "ftp:somewhere"], "data.train"),
        (["--data", "mad:/nonexistent/mad"], "/nonexistent/mad"),
        (["--resume", "/nonexistent/run"], "--resume"),
        (["--batch-size", "4096"], "fewer than 4096 samples"),
    ],
)
def test_bad_input_exits_2_before_training(
    extra: list[str], needle: str, tiny_mad: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([*_args(tiny_mad, tmp_path, name="bad"), *extra]) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
