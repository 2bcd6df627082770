"""reproduce propositions: the real --quick CLI once, the verdict rules, the option parser."""

from __future__ import annotations

import json
import math

import pytest

from clipspace.cli import main
from clipspace.config import ConfigError
from clipspace.experiments.propositions import (
    combine,
    parse_samples,
    prop1_verdict,
    prop2_verdict,
    rates,
)
from clipspace.report import Section


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("propositions") / "out"
    assert main(["reproduce", "propositions", "--quick", "--out", str(out)]) == 0
    return out


def test_quick_run_files_and_numbers(quick) -> None:
    res = json.loads((quick / "results.json").read_text())
    rows = res["prop1"]["rows"]
    assert len(rows) == 1 * 2 * 2 * 3  # curvs x rhos x deltas x ns of the quick grid
    for r in rows:
        assert 0.0 <= r["inside"] <= 1.0 and r["cone_inside"] == 1.0
        assert math.isfinite(r["objective"]) and r["objective"] > r["cone_objective"] > 0
    area = res["prop2"]["rows"]
    assert all(math.isfinite(r["mc"]) and r["se"] > 0 and r["closed"] > 0 for r in area)
    assert all(abs(r["z"]) <= 4.0 for r in area)  # Monte Carlo agrees with the closed form
    for name in ("prop1_spread", "prop2_cone_area"):
        assert (quick / "figures" / f"{name}.png").stat().st_size > 1000
    assert (quick / "report" / "report.html").exists()


def test_quick_run_verdict_follows_the_rule(quick) -> None:
    res = json.loads((quick / "results.json").read_text())
    v1, text1 = prop1_verdict(res["prop1"]["rows"])
    v2, text2 = prop2_verdict(res["prop2"]["rows"], rates(res["prop2"]["rows"]))
    assert (v1, v2) == (res["prop1"]["verdict"], res["prop2"]["verdict"])
    sec = Section.load(quick / "section.json")
    assert sec.verdict == combine(v1, v2) == res["verdict"]
    assert sec.finding == f"{text1} {text2}"
    assert sec.headline["Prop. 1 largest share inside the cone"] == pytest.approx(
        max(r["inside"] for r in res["prop1"]["rows"]))
    assert len(sec.tables[0].rows) == len(res["prop1"]["rows"])
    assert sec.verdict in (quick / "report" / "report.html").read_text()


def _row(inside: float, objective: float = 2.0, cone: float = 1.0, psi: float = 0.3) -> dict:
    return {"inside": inside, "objective": objective, "cone_objective": cone, "psi": psi}


def test_prop1_rule() -> None:
    assert prop1_verdict([_row(0.5), _row(0.0)])[0] == "agrees"
    assert prop1_verdict([_row(0.5), _row(1.0)])[0] == "disagrees"
    assert prop1_verdict([_row(0.5, objective=0.5)])[0] == "partly"
    # psi = pi/2 rows do not meet the premise and are left out
    assert prop1_verdict([_row(1.0, psi=math.pi / 2)])[0] == "not comparable"
    assert "1/2 configurations" in prop1_verdict([_row(0.5), _row(1.0)])[1]


def _area(z: float) -> dict:
    return {"z": z}


def test_prop2_rule() -> None:
    fit_ok = [{"rate_over_sqrt_c": 1.02, "predicted_max": 1.05}]
    fit_bad = [{"rate_over_sqrt_c": 0.7, "predicted_max": 1.05}]
    assert prop2_verdict([_area(1.0), _area(-3.9)], fit_ok)[0] == "agrees"
    assert prop2_verdict([_area(5.0)], fit_ok)[0] == "partly"
    assert prop2_verdict([_area(1.0)], fit_bad)[0] == "partly"
    assert prop2_verdict([_area(5.0)], fit_bad)[0] == "disagrees"


def test_combine() -> None:
    assert combine("agrees", "agrees") == "agrees"
    assert combine("agrees", "disagrees") == "partly"
    assert combine("disagrees", "disagrees") == "disagrees"


def test_samples_option() -> None:
    assert parse_samples("5000") == 5000
    for bad in ("ten", "10"):
        with pytest.raises(ConfigError, match="--samples"):
            parse_samples(bad)


def test_bad_option_exits_2(tmp_path) -> None:
    assert main(["reproduce", "propositions", "--samples", "x", "--out",
                 str(tmp_path / "o")]) == 2
