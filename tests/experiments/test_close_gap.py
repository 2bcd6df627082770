"""reproduce close-gap: the real --quick CLI once, the verdict rule, the option parser."""

from __future__ import annotations

import json
import math

import pytest

from clipspace.cli import main
from clipspace.config import ConfigError
from clipspace.experiments.close_gap import judge, parse_drop_k
from clipspace.report import Section


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("close_gap") / "out"
    assert main(["reproduce", "close-gap", "--quick", "--out", str(out)]) == 0
    return out


def _finite(tree) -> bool:
    if isinstance(tree, dict):
        return all(_finite(v) for v in tree.values())
    if isinstance(tree, list):
        return all(_finite(v) for v in tree)
    return not isinstance(tree, float) or math.isfinite(tree)


def test_quick_run_files_and_numbers(quick) -> None:
    res = json.loads((quick / "results.json").read_text())
    assert _finite(res["dims"]) and _finite(res["close_gap"])
    closed = res["close_gap"]
    assert set(closed["methods"]) == {"drop", "shift", "ideal-words"}
    assert 0 <= closed["before"]["rmg"] <= 1 and closed["methods"]["drop"]["k"] == 5
    # shift moves both means together: L2M after is far below L2M before
    assert closed["methods"]["shift"]["after"]["l2m"] < 0.5 * closed["before"]["l2m"]
    assert 0.0 <= res["dims"]["separation"]["pair"] <= 1.0
    assert len(res["dims"]["mean_image"]) == 128 and res["ablation"]["k"][-1] == 20
    for name in ("dim_means", "dim_scatter", "mean_difference", "ablation", "close_gap"):
        assert (quick / "figures" / f"{name}.png").stat().st_size > 1000
    assert (quick / "report" / "report.html").exists()


def test_quick_run_verdict_follows_the_rule(quick) -> None:
    res = json.loads((quick / "results.json").read_text())
    finding, verdict, checks = judge(res["dims"], res["close_gap"])
    assert (finding, verdict) == (res["finding"], res["verdict"])
    sec = Section.load(quick / "section.json")
    assert sec.verdict == verdict and sec.finding == finding
    assert [r[0] for r in sec.tables[1].rows] == ["before", "drop (k=5)", "shift", "ideal-words"]
    assert sec.headline["RMG before"] == pytest.approx(res["close_gap"]["before"]["rmg"])
    assert f"{res['dims']['separation']['pair']:.1%}" in finding
    page = (quick / "report" / "report.html").read_text()
    assert verdict in page and f"{res['dims']['separation']['pair']:.1%}" in page


def _dims(pair: float, rand: float) -> dict:
    return {"separation": {"pair": pair, "random": {"mean": rand, "std": 0.0}, "all": 1.0},
            "pair": [0, 1], "mean_image": [0.0] * 4, "gap_share": {"5": 0.5},
            "uniform_share": {"5": 0.1}}


def _closed(rmg_after: float, acc_after: float) -> dict:
    m = {"rmg": 0.5, "l2m": 0.5, "digit_acc": 0.8, "i2t_r1": 0.5, "t2i_r1": 0.5}
    after = {**m, "rmg": rmg_after, "digit_acc": acc_after}
    return {"before": m, "methods": {"shift": {"after": after}, "drop": {"after": after}}}


def test_judge_rule() -> None:
    assert judge(_dims(0.95, 0.6), _closed(0.3, 0.8))[1] == "agrees"
    assert judge(_dims(0.95, 0.6), _closed(0.3, 0.7))[1] == "partly"  # costs 10 points
    assert judge(_dims(0.95, 0.9), _closed(0.3, 0.8))[1] == "partly"  # random dims as good
    assert judge(_dims(0.6, 0.5), _closed(0.5, 0.8))[1] == "disagrees"
    finding, _, checks = judge(_dims(0.95, 0.6), _closed(0.3, 0.7))
    assert checks["methods"]["shift"]["acc_change"] == pytest.approx(-0.1)
    assert "costs performance" in finding and "95.0%" in finding


def test_parse_drop_k_and_bad_option_exit_2(tmp_path, capsys) -> None:
    assert parse_drop_k("3") == 3
    with pytest.raises(ConfigError, match="--drop-k"):
        parse_drop_k("x")
    assert main(["reproduce", "close-gap", "--quick", "--drop-k", "0", "--out",
                 str(tmp_path / "o")]) == 2
    assert "--drop-k" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
