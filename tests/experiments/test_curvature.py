"""reproduce curvature: the real --quick CLI once, the grid, the verdict rule, the option
parser."""

from __future__ import annotations

import json
import math

import pytest

from clipspace.cli import main
from clipspace.config import ConfigError
from clipspace.experiments.curvature import (
    SCALES,
    Cell,
    degradation,
    grid,
    parse_presets,
    verdict,
)
from clipspace.report import Section


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("curvature") / "out"
    assert main(["reproduce", "curvature", "--quick", "--out", str(out)]) == 0
    return out


def test_quick_run_files_and_numbers(quick) -> None:
    res = json.loads((quick / "results.json").read_text())
    cells = res["cells"]
    assert sorted(cells) == sorted(["meru-c0.1-fixed", "meru-c10-fixed", "atmg-c0.1-fixed",
                                    "atmg-c10-fixed"])
    for cell in cells.values():
        m = cell["metrics"]
        assert all(math.isfinite(v) for v in m.values())
        assert 0.0 <= m["digit top-1"] <= 1.0
        assert m["final c"] == pytest.approx(cell["curv"], rel=1e-5)  # fixed c stays put
        run_cfg = json.loads((quick / "runs" / f"{cell['preset']}-c{cell['curv']:g}-fixed"
                              / "config.json").read_text())
        assert run_cfg["geometry"]["curv"] == cell["curv"]
        assert run_cfg["loss"]["centroid_weight"] == 0.0
    assert (quick / "curvature.png").stat().st_size > 1000
    assert (quick / "report" / "report.html").exists()


def test_quick_run_verdict_follows_the_rule(quick) -> None:
    res = json.loads((quick / "results.json").read_text())
    v, finding = verdict(res["cells"])
    sec = Section.load(quick / "section.json")
    assert sec.verdict == v == res["verdict"] and sec.finding == finding
    assert len(sec.tables[0].rows) == 4
    dm = degradation(res["cells"], "meru")
    assert sec.headline["meru: digit top-1 drop, low -> high c"] == pytest.approx(dm)


def test_full_grid_is_24_cells_with_the_stated_overrides() -> None:
    cells = grid(("meru", "atmg"), SCALES["full"])
    assert len(cells) == 24 and len({c.name for c in cells}) == 24
    cell = Cell("meru", 10.0, True, True)
    o = cell.overrides()
    assert o["geometry.curv"] == 10.0 and o["geometry.learn_curv"] is True
    assert o["loss.centroid_weight"] > 0 and o["geometry.curv_max"] > 10.0
    assert o["geometry.curv_min"] < 0.1 and cell.name == "meru-c10-learnt-centroid"


def _rows(meru: tuple[float, float], atmg: tuple[float, float]) -> dict:
    rows = {}
    for preset, (lo, hi) in (("meru", meru), ("atmg", atmg)):
        for c, v in ((0.1, lo), (10.0, hi)):
            rows[f"{preset}{c}"] = {"preset": preset, "curv": c, "learn": False,
                                    "centroid": False, "metrics": {"digit top-1": v}}
    rows["meru-learnt"] = {"preset": "meru", "curv": 10.0, "learn": True, "centroid": False,
                           "metrics": {"digit top-1": 0.0}}  # learnt cells are not judged
    return rows


def test_degradation_and_verdict_rule() -> None:
    assert degradation(_rows((0.9, 0.5), (0.8, 0.8)), "meru") == pytest.approx(0.4)
    assert verdict(_rows((0.9, 0.5), (0.8, 0.81)))[0] == "agrees"
    assert verdict(_rows((0.9, 0.5), (0.8, 0.5)))[0] == "partly"
    assert verdict(_rows((0.9, 0.9), (0.8, 0.8)))[0] == "partly"
    assert verdict(_rows((0.9, 0.9), (0.8, 0.5)))[0] == "disagrees"
    only_one = {k: v for k, v in _rows((0.9, 0.5), (0.8, 0.8)).items() if k != "atmg10.0"}
    assert verdict(only_one)[0] == "not comparable"
    assert "-0.400" in verdict(_rows((0.9, 0.5), (0.8, 0.8)))[1]


def test_presets_option() -> None:
    assert parse_presets("atmg") == ["atmg"]
    with pytest.raises(ConfigError, match="--presets"):
        parse_presets("clip")


def test_bad_option_exits_2(tmp_path) -> None:
    assert main(["reproduce", "curvature", "--presets", "clip", "--out",
                 str(tmp_path / "o")]) == 2
