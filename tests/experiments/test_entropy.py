"""reproduce entropy (Two Effects, One Trigger Sec. 6.2, Fig. 8): the checks and verdict rule,
the option parser, and one real ``--quick`` CLI run whose files, numbers and section must
agree."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from clipspace.cli import main
from clipspace.config import ConfigError
from clipspace.experiments.entropy import (
    checks,
    finding_text,
    headline,
    last_train_loss,
    parse_finetune_attrs,
    verdict,
)
from clipspace.report import Section
from clipspace.train.logger import read_metrics

RUNS = {"learnable": "clip-k1-learnable", "frozen": "clip-k1-frozen"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("entropy") / "out"
    assert main(["reproduce", "entropy", "--quick", "--out", str(out)]) == 0
    return out


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_quick_run_writes_every_output(quick_run: Path) -> None:
    for name in ("results.json", "section.json", "entropy_curves.png", "report/report.html"):
        assert (quick_run / name).stat().st_size > 0, name
    for name in ("clip-k5", *RUNS.values()):  # every run has its headline row in the report
        ev = json.loads((quick_run / "runs" / name / "eval.json").read_text())
        assert 0 <= ev["zeroshot"]["digit"]["top1"] <= 1
        head = (quick_run / "report" / "report.html").read_text()
        assert f"<td>{name}</td><td>" in head


def test_finetunes_start_from_the_pretrained_weights(quick_run: Path) -> None:
    base = quick_run / "runs" / "clip-k5"
    for temperature, name in RUNS.items():
        cfg = json.loads((quick_run / "runs" / name / "config.json").read_text())
        assert cfg["model"]["pretrained"] == str(base)
        assert cfg["data"]["num_attrs"] == 1
        assert cfg["loss"]["learn_logit_scale"] is (temperature == "learnable")


def test_frozen_temperature_stays_at_the_pretrained_value(quick_run: Path) -> None:
    res = _results(quick_run)
    scale = res["pretrained"]["logit_scale"]
    assert res["start"]["logit_scale"] == pytest.approx(scale)
    assert res["finetuned"]["frozen"]["logit_scale"] == pytest.approx(scale, rel=1e-6)
    assert res["finetuned"]["learnable"]["logit_scale"] != pytest.approx(scale, rel=1e-4)
    logged = {r["logit_scale"] for r in read_metrics(quick_run / "runs" / RUNS["frozen"])
              if "logit_scale" in r}
    assert logged and max(logged) - min(logged) < 1e-4 * scale


def test_numbers_are_finite_and_entropy_in_range(quick_run: Path) -> None:
    res = _results(quick_run)
    rows = [res["pretrained"], res["start"], *res["finetuned"].values()]
    for row in rows:
        for key in ("entropy", "entropy_rel", "l2m", "rmg", "loss", "logit_scale"):
            assert math.isfinite(row[key]), key
        assert 0.0 <= row["entropy"] <= math.log(row["n"]) + 1e-6
        assert row["entropy_rel"] == pytest.approx(row["entropy"] / math.log(row["n"]))


def test_analysis_hook_logs_both_finetunings_from_the_same_start(quick_run: Path) -> None:
    """``run.analysis_every``: dyn/ at step 0 (the pretrained weights on the same fixed subset,
    so equal in both runs) and at the last step."""
    res = _results(quick_run)
    first = {}
    for temperature, name in RUNS.items():
        rows = [r for r in read_metrics(quick_run / "runs" / name) if "dyn/entropy" in r]
        steps = [r["step"] for r in rows]
        assert steps[0] == 0 and steps[-1] == res["finetune_steps"], steps
        first[temperature] = rows[0]
    for key in ("dyn/entropy", "dyn/l2m", "dyn/rmg"):
        assert first["learnable"][key] == pytest.approx(first["frozen"][key], rel=1e-5)


def test_section_follows_the_rule(quick_run: Path) -> None:
    res = _results(quick_run)
    sec = Section.load(quick_run / "section.json")
    result = checks(res["start"], res["finetuned"])
    assert result == res["checks"]
    assert sec.verdict == res["verdict"] == verdict(result)
    assert sec.finding == finding_text(res["start"], res["finetuned"], result, 1)
    table = sec.tables[0]
    assert len(table.rows) == 4
    assert table.rows[1][1] == f"{res['start']['entropy']:.3f}"
    assert table.rows[3][3] == f"{res['finetuned']['frozen']['l2m']:.3f}"
    assert sec.headline["L2M change (frozen T)"] == pytest.approx(
        res["finetuned"]["frozen"]["l2m"] - res["start"]["l2m"])


def test_bad_option_exits_2(tmp_path: Path) -> None:
    assert main(["reproduce", "entropy", "--out", str(tmp_path), "--finetune-attrs", "5"]) == 2
    assert not (tmp_path / "results.json").exists()


def _stats(entropy: float, scale: float, l2m: float) -> dict[str, float]:
    return {"entropy": entropy, "logit_scale": scale, "l2m": l2m}


def test_checks_and_verdict() -> None:
    start = _stats(1.0, 20.0, 0.5)
    paper_like = {"learnable": _stats(1.5, 15.0, 0.55), "frozen": _stats(1.4, 20.0, 0.7)}
    assert checks(start, paper_like) == {"A": True, "B": True, "C": True}
    assert verdict(checks(start, paper_like)) == "agrees"
    mixed = {"learnable": _stats(1.5, 25.0, 0.7), "frozen": _stats(0.9, 20.0, 0.6)}
    assert checks(start, mixed) == {"A": False, "B": False, "C": False}
    assert verdict(checks(start, mixed)) == "disagrees"
    some = {"learnable": _stats(1.5, 19.0, 0.7), "frozen": _stats(0.9, 20.0, 0.6)}
    assert verdict(checks(start, some)) == "partly"
    nan = {"learnable": _stats(math.nan, 19.0, 0.7), "frozen": _stats(1.1, 20.0, 0.8)}
    assert checks(start, nan)["A"] is None and verdict(checks(start, nan)) == "not comparable"


def test_headline_is_end_minus_start_without_nan() -> None:
    start = _stats(1.0, 20.0, 0.5)
    ends = {"learnable": _stats(1.5, 15.0, math.nan), "frozen": _stats(1.25, 20.0, 0.75)}
    assert headline(start, ends) == {"entropy change (learnable T)": 0.5,
                                     "entropy change (frozen T)": 0.25,
                                     "L2M change (frozen T)": 0.25}


def test_finding_text_reports_the_numbers() -> None:
    start = _stats(1.0, 20.0, 0.5)
    ends = {"learnable": _stats(1.5, 15.0, 0.55), "frozen": _stats(1.25, 20.0, 0.75)}
    text = finding_text(start, ends, checks(start, ends), 1)
    for part in ("1.000 -> 1.500", "1.000 -> 1.250", "20.000 -> 15.000", "0.500 -> 0.750",
                 "[A holds]", "[C holds]", "1-attribute"):
        assert part in text


def test_last_train_loss(tmp_path: Path) -> None:
    assert math.isnan(last_train_loss(tmp_path))
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 10, "loss": 3.0}\n{"step": 10, "dyn/l2m": 0.1}\n{"step": 20, "loss": 2.5}\n')
    assert last_train_loss(tmp_path) == 2.5


@pytest.mark.parametrize("text", ["5", "-1", "one"])
def test_parse_finetune_attrs_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="--finetune-attrs"):
        parse_finetune_attrs(text)
