"""reproduce prevalence (Two Effects, One Trigger Fig. 6b): the verdict rule, the option parsers,
and one real ``--quick`` CLI run whose files, numbers and section must agree."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from clipspace.cli import main
from clipspace.config import ConfigError
from clipspace.experiments.prevalence import (
    finding_text,
    headline,
    parse_attrs,
    parse_slots,
    slot_deltas,
    slot_moad,
    verdict,
)
from clipspace.report import Section

SLOTS = ["colour", "scale"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prevalence") / "out"
    assert main(["reproduce", "prevalence", "--quick", "--out", str(out),
                 "--slots", ",".join(SLOTS)]) == 0
    return out


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_quick_run_writes_every_output(quick_run: Path) -> None:
    for name in ("results.json", "section.json", "prevalence.png", "report/report.html"):
        assert (quick_run / name).stat().st_size > 0, name
    assert sorted(p.name for p in (quick_run / "runs").iterdir() if p.is_dir()) == [
        "baseline", "named-colour", "named-scale"]


def test_named_runs_name_their_slot_in_every_caption(quick_run: Path) -> None:
    for slot in SLOTS:
        cfg = json.loads((quick_run / "runs" / f"named-{slot}" / "config.json").read_text())
        assert cfg["data"]["main_object"] == slot
    base = json.loads((quick_run / "runs" / "baseline" / "config.json").read_text())
    assert base["data"]["main_object"] == ""


def test_results_are_the_runs_own_moad(quick_run: Path) -> None:
    res = _results(quick_run)
    for slot in SLOTS:
        analysis = json.loads((quick_run / "runs" / f"named-{slot}" / "analysis.json").read_text())
        for m in ("image", "text"):
            assert res["named"][slot][m] == pytest.approx(analysis["moad"][f"per_slot_{m}"][slot])
            assert math.isfinite(res["named"][slot][m])
            assert res["delta"][slot][m] == pytest.approx(
                res["named"][slot][m] - res["baseline"][slot][m])


def test_colour_named_always_lowers_its_object_bias(quick_run: Path) -> None:
    """Colour is learnt within the quick budget: naming it in every caption makes both
    embeddings group by colour far more than the baseline's (measured: about -0.5 or lower)."""
    delta = _results(quick_run)["delta"]["colour"]
    assert delta["image"] < -0.1 and delta["text"] < -0.1


def test_section_follows_the_rule(quick_run: Path) -> None:
    res = _results(quick_run)
    sec = Section.load(quick_run / "section.json")
    v, held, total = verdict(res["delta"])
    assert (sec.verdict, res["verdict"], res["held"], res["measurable"]) == (v, v, held, total)
    assert sec.finding == finding_text(res["delta"], held, total, res["steps"])
    assert [row[0] for row in sec.tables[0].rows] == SLOTS
    assert sec.tables[0].rows[0][3] == f"{res['delta']['colour']['image']:+.3f}"
    assert all(Path(f).exists() for f in sec.figures)


def test_bad_options_exit_2(tmp_path: Path) -> None:
    assert main(["reproduce", "prevalence", "--out", str(tmp_path), "--slots", "size"]) == 2
    assert main(["reproduce", "prevalence", "--out", str(tmp_path), "--attrs", "9"]) == 2
    assert not (tmp_path / "results.json").exists()


def test_slot_moad_reads_both_modalities() -> None:
    result = {"moad": {"per_slot_image": {"colour": -0.4}, "per_slot_text": {"colour": None}}}
    got = slot_moad(result, "colour")
    assert got["image"] == -0.4 and math.isnan(got["text"])


def test_deltas_and_verdict() -> None:
    base = {"colour": {"image": 0.2, "text": 0.3}, "scale": {"image": 0.1, "text": 0.1}}
    named = {"colour": {"image": -0.1, "text": 0.0}, "scale": {"image": 0.0, "text": 0.2}}
    deltas = slot_deltas(base, named)
    assert deltas["colour"]["image"] == pytest.approx(-0.3)
    assert deltas["scale"]["text"] == pytest.approx(0.1)
    assert verdict(deltas) == ("partly", 3, 4)
    assert verdict({"s": {"image": -0.1, "text": -0.2}}) == ("agrees", 2, 2)
    assert verdict({"s": {"image": 0.1, "text": 0.0}, "t": {"image": -1.0, "text": 0.2}}) == (
        "disagrees", 1, 4)
    assert verdict({"s": {"image": math.nan, "text": -0.2}}) == ("agrees", 1, 1)
    assert verdict({"s": {"image": math.nan, "text": math.nan}}) == ("not comparable", 0, 0)


def test_headline_means_skip_nan() -> None:
    deltas = {"colour": {"image": -0.5, "text": math.nan},
              "scale": {"image": 0.1, "text": math.nan}}
    assert headline(deltas) == {"mean MOAD change (image)": pytest.approx(-0.2)}


def test_finding_names_every_number() -> None:
    deltas = {"colour": {"image": -0.5, "text": -0.25}, "scale": {"image": 0.125, "text": -0.1}}
    text = finding_text(deltas, 3, 4, 80)
    for part in ("-0.500", "-0.250", "+0.125", "-0.100", "3 of 4", "80 steps",
                 "did not drop for scale (image)"):
        assert part in text


@pytest.mark.parametrize("text", ["", "size", "colour,,x", "colour,shape"])
def test_parse_slots_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="--slots"):
        parse_slots(text)


def test_parse_slots_and_attrs() -> None:
    assert parse_slots("colour, scale,colour") == ["colour", "scale"]
    assert parse_attrs("3") == 3
    for bad in ("0", "6", "x"):
        with pytest.raises(ConfigError, match="--attrs"):
            parse_attrs(bad)
