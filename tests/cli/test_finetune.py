"""``clipspace finetune``: train, evaluate, refuse to overwrite, resume bit for bit; bad data
exits 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from tests.helpers.finetune import (  # noqa: E402
    model_state,
    write_test_csv,
    write_train_csv,
)


def test_cli_finetune_eval_and_resume(finetune_hf_clip: Path, tmp_path: Path) -> None:
    from clipspace.cli import main

    train_csv = write_train_csv(tmp_path / "train.csv")
    test_csv, images = write_test_csv(tmp_path / "hc")
    common = ["finetune", "re", "--model", str(finetune_hf_clip),
              "--data", f"hierarcaps:{train_csv}", "--output-dir", str(tmp_path / "runs"),
              "--set", "optim.lr=1e-3",
              "--batch-size", "2", "--no-progress", "--set", "run.tensorboard=false"]
    assert main([*common, "--name", "full", "--steps", "5"]) == 0
    assert main([*common, "--name", "part", "--steps", "3", "--eval", f"hierarcaps:{test_csv}",
                 "--image-dir", str(images)]) == 0
    part = tmp_path / "runs" / "part"
    assert (part / "checkpoints" / "step_3" / "model.safetensors").is_file()
    res = json.loads((part / "eval.json").read_text())
    for key in ("precision", "recall", "tau_d"):
        assert 0.0 <= res["hierarchy"][key] <= 1.0 or key == "tau_d"
        assert math.isfinite(res["hierarchy"][key])
    assert "i2t_r1" in res["retrieval"]
    # an existing run is never replaced silently
    assert main([*common, "--name", "part", "--steps", "3"]) == 2
    # resume to 5 steps == the uninterrupted 5-step run, bit for bit
    assert main([*common, "--name", "part", "--steps", "5", "--resume", "latest"]) == 0
    full, resumed = model_state(tmp_path / "runs" / "full"), model_state(part)
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    steps = [json.loads(x)["step"] for x in (part / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]
    # the evaluation command of clipspace reads the fine-tuned run directly
    out = tmp_path / "e.json"
    assert main(["eval", str(part), "--data", f"hierarcaps:{test_csv}", "--image-dir",
                 str(images), "--suite", "hierarchy", "--no-progress", "--out", str(out)]) == 0
    assert "tau_d" in json.loads(out.read_text())["hierarchy"]


def test_bad_data_spec_is_exit_2(finetune_hf_clip: Path, tmp_path: Path) -> None:
    from clipspace.cli import main

    assert main(["finetune", "re", "--model", str(finetune_hf_clip), "--data", "csv:x.csv",
                 "--output-dir", str(tmp_path), "--no-progress"]) == 2
    assert main(["finetune", "re", "--model", str(finetune_hf_clip), "--data",
                 f"hierarcaps:{tmp_path / 'missing.csv'}", "--output-dir", str(tmp_path)]) == 2
