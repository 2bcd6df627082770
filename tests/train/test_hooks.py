"""``--eval-every``: suites and the modality gap on the validation split, logged as val/...;
the engine runs hooks every N steps and at the end."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipspace.cli import main
from clipspace.train import train
from clipspace.train.logger import read_metrics
from tests.helpers.configs import set_flags, tiny_config


def test_eval_every_logs_suites_and_gap(tiny_mad: Path, tmp_path: Path) -> None:
    cfg = tiny_config("clip", tiny_mad, tmp_path, **{
        "optim.steps": 6, "run.eval_every": 3, "data.val": f"mad:{tiny_mad}",
        "run.eval_suites": "zeroshot,retrieval", "run.eval_samples": 40})
    run = train(cfg)
    merged: dict[int, dict] = {}
    for r in read_metrics(run):  # each hook logs its own record at the step
        merged.setdefault(r["step"], {}).update(r)
    rows = [r for r in merged.values() if "val/gap.rmg" in r]
    assert [r["step"] for r in rows] == [3, 6]  # every 3 steps and at the end
    for r in rows:
        assert 0 <= r["val/zeroshot.digit.top1"] <= 1
        assert 0 <= r["val/retrieval.i2t_r1"] <= r["val/retrieval.i2t_r10"] <= 1
        assert 0 < r["val/gap.rmg"] < 1 and r["val/gap.l2m"] >= 0
        assert "val/loss" in r
    # the model moved between the two evaluations, so the metrics do too
    assert rows[0]["val/gap.l2m"] != rows[1]["val/gap.l2m"]


def test_eval_every_without_validation_data_is_an_error(tiny_mad: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    from tests.helpers.configs import TINY

    code = main(["train", "--data", f"mad:{tiny_mad}", "--steps", "2", "--eval-every", "1",
                 "--output-dir", str(tmp_path), "--name", "x", *set_flags(TINY)])
    assert code == 2
    assert "run.eval_every" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_bad_eval_suite_names_the_suite(tiny_mad: Path, tmp_path: Path) -> None:
    cfg = tiny_config("clip", tiny_mad, tmp_path, **{
        "run.eval_every": 2, "data.val": f"mad:{tiny_mad}", "run.eval_suites": "zeroshot,nope"})
    with pytest.raises(ValueError, match="nope"):
        train(cfg)
