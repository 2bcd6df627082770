"""reproduce entailment: the real --quick CLI once, plus the pure pieces (cells, stats, rule)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from clipspace.cli import main
from clipspace.experiments.entailment import (
    Cell,
    entailment_checks,
    parse_presets,
    parse_weight,
    plan_cells,
    root_stats,
    verdict_of,
)
from clipspace.report import Section

ALL_RUNS = {"clip-entail0", "euclip-entail0", "euclip-entail0.2", "meru-entail0",
            "meru-entail0.2"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("entailment") / "out"
    assert main(["reproduce", "entailment", "--quick", "--out", str(out)]) == 0
    return out


def test_quick_writes_every_output(quick_run: Path) -> None:
    for rel in ("results.json", "section.json", "report/report.html",
                "figures/root_distance_clip.png", "figures/root_distance_euclip.png",
                "figures/root_distance_meru.png"):
        assert (quick_run / rel).is_file(), rel
    assert {p.name for p in (quick_run / "runs").iterdir() if p.is_dir()} == ALL_RUNS


def test_quick_runs_and_missing_cell(quick_run: Path) -> None:
    res = json.loads((quick_run / "results.json").read_text())
    assert set(res["runs"]) == ALL_RUNS
    assert [m["run"] for m in res["missing"]] == ["clip-entail0.2"]
    assert "origin" in res["missing"][0]["reason"]
    for name, run in res["runs"].items():
        mi, mt = run["median_image"], run["median_text"]
        assert math.isfinite(mi) and math.isfinite(mt) and mi >= 0 and mt >= 0, name
        assert run["separation"] == pytest.approx((mi - mt) / (mi + mt))
        assert run["text_nearer"] == (mt < mi)
        for q in run["quantiles"].values():
            assert q == sorted(q)
        assert run["quantiles"]["image"][2] == pytest.approx(mi)
        assert 0.0 <= run["zeroshot_digit_top1"] <= 1.0
    assert res["runs"]["meru-entail0.2"]["entail_weight"] == 0.2


def test_quick_verdict_follows_the_rule(quick_run: Path) -> None:
    res = json.loads((quick_run / "results.json").read_text())
    stats = {name: run for name, run in res["runs"].items()}
    cells = [Cell(r["preset"], r["entail_weight"]) for r in res["runs"].values()]
    checks = entailment_checks(cells, stats)
    assert [c["holds"] for c in res["checks"]] == [ok for _, ok in checks]
    assert len(checks) == 4  # two runs with w > 0, two geometries with both weights
    section = Section.load(quick_run / "section.json")
    assert section.verdict == res["verdict"] == verdict_of(checks)
    for text, ok in checks:
        assert f"{text} ({'holds' if ok else 'does not hold'})" in section.finding
    assert "clip-entail0.2 does not exist" in section.finding
    assert len(section.figures) == 3 and all(Path(f).is_file() for f in section.figures)


def test_quick_distances_are_the_papers(quick_run: Path) -> None:
    """Recompute one Euclidean run's medians directly: |x| of the test points."""
    from clipspace.eval.embed import embed
    from clipspace.experiments.common import load_model_and_data

    res = json.loads((quick_run / "results.json").read_text())
    run = res["runs"]["euclip-entail0.2"]
    model, data, tok = load_model_and_data(quick_run / "runs" / "euclip-entail0.2",
                                           f"mad:{quick_run / 'mad'}")
    emb = embed(model, data, tok, max_samples=run["n"], progress=False)
    assert float(np.median(emb.image.norm(dim=1).numpy())) == pytest.approx(
        run["median_image"], rel=1e-5)
    assert float(np.median(emb.text.norm(dim=1).numpy())) == pytest.approx(
        run["median_text"], rel=1e-5)


def test_plan_cells_follows_check_terms() -> None:
    cells, missing = plan_cells(["clip", "meru"], 0.5)
    assert [c.name for c in cells] == ["clip-entail0", "meru-entail0", "meru-entail0.5"]
    assert missing[0]["run"] == "clip-entail0.5" and "loss.entail_weight" in missing[0]["reason"]


def test_root_stats_and_rule() -> None:
    s = root_stats({"image": np.array([1.0, 2.0, 3.0]), "text": np.array([0.5, 1.0, 1.5])})
    assert s["median_image"] == 2.0 and s["median_text"] == 1.0 and s["text_nearer"]
    assert s["separation"] == pytest.approx(1 / 3)
    near = {"median_image": 2.0, "median_text": 1.0, "text_nearer": True, "separation": 0.3}
    far = {"median_image": 1.0, "median_text": 2.0, "text_nearer": False, "separation": -0.3}
    cells = [Cell("euclip", 0.0), Cell("euclip", 0.2)]
    assert verdict_of(entailment_checks(cells, {"euclip-entail0": far,
                                                "euclip-entail0.2": near})) == "agrees"
    assert verdict_of(entailment_checks(cells, {"euclip-entail0": near,
                                                "euclip-entail0.2": far})) == "disagrees"
    both_near = {"euclip-entail0": near, "euclip-entail0.2": near}  # nearer, not further apart
    assert verdict_of(entailment_checks(cells, both_near)) == "partly"
    assert verdict_of(entailment_checks([Cell("clip", 0.0)], {"clip-entail0": near})) == \
        "not comparable"


def test_option_parsers() -> None:
    assert parse_presets("meru, euclip,meru") == ["meru", "euclip"]
    assert parse_weight("0.5") == 0.5
    for bad in ("", "atmg", "clip,foo"):
        with pytest.raises(Exception, match="--presets"):
            parse_presets(bad)
    for bad in ("0", "-1", "nan", "x"):
        with pytest.raises(Exception, match="--entail-weight"):
            parse_weight(bad)


def test_bad_option_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "entailment", "--quick", "--out", str(tmp_path / "o"),
                 "--entail-weight", "0"]) == 2
    assert "--entail-weight" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
