"""Metrics logging: JSONL records and, when tensorboard is installed, TensorBoard scalars."""

import json

import pytest

from clipspace.train.logger import MetricsLogger


def test_jsonl_records_and_truncate_after(tmp_path) -> None:
    log = MetricsLogger(tmp_path)
    for step in (1, 2, 3):
        log.log(step, {"loss": 1.0 / step, "lr": 0.1})
    log.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[1]["loss"] == 0.5
    MetricsLogger(tmp_path).truncate_after(2)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]


def test_tensorboard_scalars_match_jsonl(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = MetricsLogger(tmp_path, tensorboard=True)
    for step in (10, 20, 30):
        log.log(step, {"loss": 2.0 - step / 100, "logit_scale": 14.0 + step, "note": "text"})
    log.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == {"loss", "logit_scale"}  # strings are JSONL-only
    loss = acc.Scalars("loss")
    assert [e.step for e in loss] == [10, 20, 30]
    assert [round(e.value, 5) for e in loss] == [1.9, 1.8, 1.7]
    assert [e.value for e in acc.Scalars("logit_scale")] == [24.0, 34.0, 44.0]


def test_tensorboard_resume_purges_later_steps(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = MetricsLogger(tmp_path, tensorboard=True)
    for step in (1, 2, 3):
        log.log(step, {"loss": float(step)})
    log.close()
    resumed = MetricsLogger(tmp_path, tensorboard=True)  # killed after step 3, resumed at 1
    resumed.truncate_after(1)
    resumed.log(2, {"loss": 20.0})
    resumed.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 1.0), (2, 20.0)]
