"""Checkpoint store: atomic step dirs, keep-last-N, latest, RNG capture, weights round trip."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from clipspace import checkpoint as ck
from clipspace.errors import ClipspaceError
from clipspace.train import state as st
from clipspace.train.logger import MetricsLogger, read_metrics


def test_rng_capture_restore_replays() -> None:
    st.seed_everything(3)
    state = st.capture_rng()
    first = (random.random(), np.random.rand(), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(5)
    st.restore_rng(state)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == again[0] and first[1] == again[1]
    assert torch.equal(first[2], again[2])


def test_save_keep_last_latest_and_load(tmp_path: Path) -> None:
    model = nn.Linear(3, 2)
    for step in (5, 10, 15):
        with torch.no_grad():
            model.weight.fill_(step)
        ck.save_checkpoint(tmp_path, step, model, {"epoch": 1, "consumed": step}, keep_last=2)
    steps = [s for s, _ in ck.list_checkpoints(tmp_path)]
    assert steps == [10, 15]
    latest = ck.latest_checkpoint(tmp_path)
    assert latest is not None and latest.name == "step_15"
    assert ck.resolve_checkpoint(str(tmp_path)) == latest
    assert ck.run_dir_of(latest) == tmp_path.resolve()
    fresh = nn.Linear(3, 2)
    state = ck.load_checkpoint(latest, fresh)
    assert torch.equal(fresh.weight, torch.full((2, 3), 15.0))
    assert state["step"] == 15 and state["consumed"] == 15 and state["epoch"] == 1
    # no leftovers of the temporary build directories
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_10", "step_15"]


def test_incomplete_checkpoint_is_ignored(tmp_path: Path) -> None:
    ck.save_checkpoint(tmp_path, 2, nn.Linear(2, 2), {}, keep_last=0)
    (tmp_path / "checkpoints" / "step_9").mkdir()  # e.g. a torn copy without state.pt
    latest = ck.latest_checkpoint(tmp_path)
    assert latest is not None and latest.name == "step_2"
    with pytest.raises(ClipspaceError, match="not a checkpoint"):
        ck.resolve_checkpoint(str(tmp_path / "nope"))
    assert ck.latest_checkpoint(tmp_path / "empty") is None


def test_weights_mismatch_is_an_error(tmp_path: Path) -> None:
    ck.write_weights(nn.Linear(2, 2), tmp_path / "w.safetensors")
    with pytest.raises(ClipspaceError, match="do not fit"):
        ck.load_weights(nn.Linear(3, 2), tmp_path / "w.safetensors")


class WithMeta(nn.Linear):
    def weights_metadata(self) -> dict[str, str]:
        return {"format": "test", "eot_id": "7"}


def test_one_writer_stores_the_modules_metadata(tmp_path: Path) -> None:
    """Training checkpoints and save_pretrained write through write_weights: the module's
    metadata (e.g. the text pooling ids) is in every weights file."""
    ck.save_checkpoint(tmp_path, 1, WithMeta(2, 2), {}, keep_last=0)
    meta = ck.read_metadata(ck.step_dir(tmp_path, 1) / ck.WEIGHTS_NAME)
    assert meta == {"format": "test", "eot_id": "7"}
    files = ck.find_weights(tmp_path)
    assert files.weights == ck.step_dir(tmp_path, 1) / ck.WEIGHTS_NAME and files.config is None


def test_metrics_logger_truncates_on_resume(tmp_path: Path) -> None:
    log = MetricsLogger(tmp_path, tensorboard=False)
    for step in range(1, 6):
        log.log(step, {"loss": torch.tensor(1.0 / step), "lr": 0.1})
    log.flush()
    with (tmp_path / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 6, "lo')  # torn line of a killed run
    log.truncate_after(3)
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert records[1]["loss"] == pytest.approx(0.5)
    off = MetricsLogger(tmp_path / "rank1", enabled=False)
    off.log(1, {"loss": 1.0})
    off.close()
    assert not (tmp_path / "rank1").exists()
