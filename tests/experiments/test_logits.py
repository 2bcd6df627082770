"""reproduce logits: the real --quick CLI once, plus the pure pieces (cells, scores, rule)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from clipspace.cli import main
from clipspace.experiments.logits import (
    LABELS,
    LOSSES,
    ROWS,
    SIGLIP_BIAS,
    Cell,
    cell_overrides,
    grids,
    logit_checks,
    parse_bias,
    parse_losses,
    parse_rows,
    tolerance,
    verdict_of,
)
from clipspace.report import Section
from clipspace.tree import get_dotted


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("logits") / "out"
    assert main(["reproduce", "logits", "--quick", "--out", str(out)]) == 0
    return out


def test_quick_writes_every_cell(quick_run: Path) -> None:
    for rel in ("results.json", "section.json", "report/report.html", "logits.png"):
        assert (quick_run / rel).is_file(), rel
    res = json.loads((quick_run / "results.json").read_text())
    assert res["missing"] == []  # all 8 combinations exist (SigLIP takes any logit)
    assert set(res["scores"]) == set(ROWS)
    assert len([p for p in (quick_run / "runs").iterdir() if p.is_dir()]) == 8
    for row, cols in res["scores"].items():
        assert set(cols) == set(LOSSES), row
        for loss, s in cols.items():
            assert 0.0 <= s["zeroshot.digit.top1"] <= 1.0 and 0.0 <= s["retrieval.mean_r1"] <= 1
            ev = json.loads((quick_run / "runs" / Cell(row, loss).name / "eval.json").read_text())
            assert s["zeroshot.digit.top1"] == pytest.approx(get_dotted(ev, "zeroshot.digit.top1"))
            mean = (get_dotted(ev, "retrieval.i2t_r1") + get_dotted(ev, "retrieval.t2i_r1")) / 2
            assert s["retrieval.mean_r1"] == pytest.approx(mean)


def test_quick_cells_trained_what_they_say(quick_run: Path) -> None:
    """Each run's config holds its cell's geometry, logit and loss, entailment off."""
    geometry = {"clip": "sphere", "euclip": "euclidean", "meru": "lorentz"}
    for row, (preset, over) in ROWS.items():
        for loss in LOSSES:
            cfg = json.loads((quick_run / "runs" / Cell(row, loss).name / "config.json")
                             .read_text())
            assert cfg["geometry"]["name"] == geometry[preset]
            assert cfg["loss"]["logit"] == over["loss.logit"]
            assert cfg["loss"]["contrastive"] == loss
            assert cfg["loss"]["entail_weight"] == 0.0
            if loss == "siglip":  # the row's start: -10 for cosine, 0 for a distance
                assert cfg["loss"]["siglip_bias"] == SIGLIP_BIAS[row]


def test_quick_verdict_follows_the_rule(quick_run: Path) -> None:
    res = json.loads((quick_run / "results.json").read_text())
    checks = logit_checks(res["scores"], "infonce")
    assert len(checks) == 4  # 2 rivals x 2 metrics
    assert [c["holds"] for c in res["checks"]] == [ok for _, ok in checks]
    section = Section.load(quick_run / "section.json")
    assert section.verdict == res["verdict"] == verdict_of(checks)
    for text, ok in checks + logit_checks(res["scores"], "siglip"):
        assert f"{text} ({'holds' if ok else 'does not hold'})" in section.finding
    assert all(math.isfinite(v) for v in section.headline.values())
    table = section.tables[0]
    assert [r[0] for r in table.rows] == [LABELS[r] for r in ROWS]
    assert table.rows[2][1] == f"{res['scores']['euclid-d2']['infonce']['zeroshot.digit.top1']:.3f}"
    assert res["siglip_bias"] == SIGLIP_BIAS
    assert "SigLIP's initial bias: cosine (sphere) -10, -d (Euclidean) 0" in table.caption


def test_cell_overrides_and_grid() -> None:
    preset, over = cell_overrides(Cell("lorentz-d", "siglip"))
    assert preset == "meru" and over["loss.logit"] == "neg_dist"
    assert over["loss.contrastive"] == "siglip" and over["loss.entail_weight"] == 0.0
    assert over["loss.siglip_bias"] == 0.0  # threshold at d = 0, the distance analogue
    assert cell_overrides(Cell("cosine", "siglip"))[1]["loss.siglip_bias"] == -10.0
    assert cell_overrides(Cell("euclid-d2", "siglip"), -3.0)[1]["loss.siglip_bias"] == -3.0
    assert "loss.siglip_bias" not in cell_overrides(Cell("euclid-d2", "infonce"), 0.0)[1]
    s = {"cosine": {"infonce": {"zeroshot.digit.top1": 0.5, "retrieval.mean_r1": 0.25, "n": 9}}}
    g = grids(s, ["cosine", "euclid-d"], ["infonce", "siglip"])["zero-shot digit top-1"]
    assert g[0, 0] == 0.5 and np.isnan(g[0, 1]) and np.isnan(g[1]).all()


def test_rule_with_tolerance() -> None:
    assert tolerance(0.5, 100) == pytest.approx(0.1)
    assert tolerance(0.5, 0) == 0.0

    def cell(z: float, r: float) -> dict[str, float]:
        return {"zeroshot.digit.top1": z, "retrieval.mean_r1": r, "n": 100}

    scores = {"euclid-d2": {"infonce": cell(0.45, 0.9)},  # zero-shot within 0.1 of 0.5
              "cosine": {"infonce": cell(0.5, 0.5)}, "lorentz-d": {"infonce": cell(0.9, 0.1)}}
    checks = logit_checks(scores, "infonce")
    assert [ok for _, ok in checks] == [True, True, False, True]
    assert verdict_of(checks) == "partly"
    assert verdict_of(logit_checks(scores, "siglip")) == "not comparable"
    scores["euclid-d2"]["infonce"] = cell(0.0, 0.0)
    assert verdict_of(logit_checks(scores, "infonce")) == "disagrees"


def test_option_parsers() -> None:
    assert parse_rows("euclid-d2,cosine") == ["euclid-d2", "cosine"]
    assert parse_losses("siglip") == ["siglip"]
    for bad in ("", "dot", "cosine,foo"):
        with pytest.raises(Exception, match="--rows"):
            parse_rows(bad)
    with pytest.raises(Exception, match="--losses"):
        parse_losses("angle")
    assert parse_bias("0") == 0.0
    with pytest.raises(Exception, match="--siglip-bias"):
        parse_bias("inf")


def test_bad_option_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "logits", "--quick", "--out", str(tmp_path / "o"),
                 "--losses", "hinge"]) == 2
    assert "--losses" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
