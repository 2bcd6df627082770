"""reproduce gap-dynamics (Two Effects, One Trigger Fig. 7b): the curve and verdict rules, the
option parsers, and one real ``--quick`` CLI run whose files, curves and section must agree."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from clipspace.cli import main
from clipspace.config import ConfigError
from clipspace.experiments.gap_dynamics import (
    CLOSED,
    QUANTITIES,
    QUICK_DYNAMICS,
    dynamics_curves,
    gap_change,
    parse_every,
    parse_shift,
    verdict,
)
from clipspace.report import Section
from clipspace.train.logger import read_metrics

RUNS = ("default", "large-gap")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gap_dynamics") / "out"
    assert main(["reproduce", "gap-dynamics", "--quick", "--out", str(out)]) == 0
    return out


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_quick_run_writes_every_output(quick_run: Path) -> None:
    for name in ("results.json", "section.json", "dynamics.png", "report/report.html"):
        assert (quick_run / name).stat().st_size > 0, name


def test_curves_are_logged_every_n_steps_and_finite(quick_run: Path) -> None:
    res = _results(quick_run)
    steps = QUICK_DYNAMICS.steps
    every = res["every"]
    assert every == steps // 20
    for run in RUNS:
        curve = res["curves"][run]
        assert curve["step"] == list(range(0, steps + 1, every))
        for key in QUANTITIES:
            assert len(curve[key]) == len(curve["step"])
            assert all(math.isfinite(v) for v in curve[key]), (run, key)
        assert all(0 <= v <= 2 for v in curve["l2m"]) and all(0 <= v <= 1 for v in curve["rmg"])
        assert all(0 <= v <= math.log(res["samples"]) + 1e-6 for v in curve["entropy"])


def test_curves_are_the_logged_metrics(quick_run: Path) -> None:
    res = _results(quick_run)
    for run in RUNS:
        records = read_metrics(quick_run / "runs" / f"clip-{run}")
        assert res["curves"][run] == json.loads(json.dumps(dynamics_curves(records)))


def test_large_gap_run_starts_with_a_larger_gap(quick_run: Path) -> None:
    curves = _results(quick_run)["curves"]
    assert curves["large-gap"]["l2m"][0] > curves["default"]["l2m"][0]
    assert curves["large-gap"]["rmg"][0] > curves["default"]["rmg"][0]
    cfg = json.loads((quick_run / "runs" / "clip-large-gap" / "config.json").read_text())
    assert cfg["model"]["init_text_shift"] == 30.0 and cfg["run"]["analysis_every"] == 3


def test_section_follows_the_rule_on_the_measured_curves(quick_run: Path) -> None:
    res = _results(quick_run)
    sec = Section.load(quick_run / "section.json")
    expected, finding, facts = verdict(res["curves"]["default"]["l2m"],
                                       res["curves"]["large-gap"]["l2m"])
    assert sec.verdict == res["verdict"] == expected
    assert sec.finding == res["finding"] == finding
    assert sec.paper == "Two Effects, One Trigger"
    large_end = res["curves"]["large-gap"]["l2m"][-1]
    assert sec.headline["L2M large-gap (end)"] == pytest.approx(large_end)
    assert [row[0] for row in sec.tables[0].rows] == list(RUNS)
    start, end = res["curves"]["default"]["l2m"][0], res["curves"]["default"]["l2m"][-1]
    assert sec.tables[0].rows[0][1] == f"{start:.3f} -> {end:.3f}"
    assert Path(sec.figures[0]).name == "dynamics.png"
    assert facts["shrinks"] == (res["facts"]["large_gap"]["final"]
                                <= 0.9 * res["facts"]["large_gap"]["initial"])


def test_dynamics_curves_sorts_steps_and_keeps_the_last_record() -> None:
    row = {f"dyn/{k}": 1.0 for k in QUANTITIES}
    records = [{"step": 4, **row, "dyn/l2m": 0.5}, {"step": 0, **row}, {"step": 1, "loss": 3.0},
               {"step": 4, **row, "dyn/l2m": 0.4}]
    curves = dynamics_curves(records)
    assert curves["step"] == [0, 4]
    assert curves["l2m"] == [1.0, 0.4]


def test_gap_change() -> None:
    assert gap_change([2.0, 1.0, 1.5]) == {"initial": 2.0, "final": 1.5, "min": 1.0,
                                           "change": -0.25}
    assert gap_change([0.0, 0.0])["change"] == 0.0
    with pytest.raises(ValueError):
        gap_change([])


@pytest.mark.parametrize(("default", "large", "expected"), [
    ([1.0, 0.6], [1.5, 0.7], "agrees"),  # shrinks, open, excess 0.5 -> 0.1
    ([1.0, 0.6], [1.5, 1.2], "partly"),  # shrinks 20 %, open, excess 0.5 -> 0.6
    ([1.0, 0.6], [1.5, 1.4], "disagrees"),  # shrinks only 7 %
    ([1.0, 0.05], [1.5, 0.3], "disagrees"),  # the default gap closes
    ([1.0, 0.6], [1.5, CLOSED / 2], "disagrees"),  # the large gap closes
])
def test_verdict_rule(default: list[float], large: list[float], expected: str) -> None:
    got, finding, facts = verdict(default, large)
    assert got == expected
    assert f"L2M {large[0]:.3f} -> {large[-1]:.3f}" in finding
    assert facts["excess_initial"] == pytest.approx(large[0] - default[0])


def test_parsers() -> None:
    assert parse_shift("12.5") == 12.5 and parse_every("0") == 0
    for bad in ("0", "-1", "nan", "inf", "x"):
        with pytest.raises(ConfigError, match="--shift"):
            parse_shift(bad)
    for bad in ("-2", "1.5", "y"):
        with pytest.raises(ConfigError, match="--every"):
            parse_every(bad)


@pytest.mark.parametrize("args", [["--shift", "-3"], ["--shift", "nan"], ["--every", "x"]])
def test_bad_option_exits_2(tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "out"
    assert main(["reproduce", "gap-dynamics", "--out", str(out), *args]) == 2
    assert not out.exists()
