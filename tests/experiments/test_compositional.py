"""reproduce compositional: the real --quick CLI once (meru and hycoclip on MAD scenes), which
terms each preset trained with, and the verdict rule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from clipspace.cli import main
from clipspace.experiments.compositional import CLAIMED, METRICS, TOL, result_table, verdict
from clipspace.report import Section
from clipspace.train.logger import read_metrics


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compositional") / "out"
    assert main(["reproduce", "compositional", "--quick", "--out", str(out),
                 "--presets", "meru,hycoclip"]) == 0
    return out


def test_quick_run_trains_on_scenes_with_and_without_boxes(quick: Path) -> None:
    res = json.loads((quick / "results.json").read_text())
    assert list(res["rows"]) == ["meru", "hycoclip"]
    for row in res["rows"].values():
        assert set(row) == set(METRICS)
        assert 0.0 <= row["scene mAP"] <= 1.0 and math.isfinite(row["box->scene text AUC"])
    hyco = [r for r in read_metrics(quick / "runs" / "hycoclip") if "loss" in r]
    meru = [r for r in read_metrics(quick / "runs" / "meru") if "loss" in r]
    assert {"loss/box_image_text", "loss/entail_boximage_image"} <= set(hyco[-1])
    assert "loss/box_image_text" not in meru[-1] and "loss/entailment" in meru[-1]
    cfg = json.loads((quick / "runs" / "hycoclip" / "config.json").read_text())
    assert cfg["data"]["train"].startswith("scenes:") and cfg["loss"]["compositional"]
    sec = Section.load(quick / "section.json")
    assert (sec.verdict, sec.finding) == verdict(res["rows"])
    assert (quick / "report" / "report.html").exists()


def test_undefined_metrics_read_n_a_in_the_table() -> None:
    row = dict.fromkeys(METRICS, 0.5) | {"box->scene image AUC": float("nan")}
    cells = result_table({"clip": row}).rows[0]
    assert cells[0] == "clip" and cells.count("n/a") == 1
    assert cells.count("0.500") == len(METRICS) - 1


def test_verdict_rule() -> None:
    def row(x: float) -> dict[str, float]:
        return {m: x for m in METRICS}

    assert verdict({"meru": row(0.5)})[0] == "not comparable"
    assert verdict({"meru": row(0.5), "hycoclip": row(0.5 - TOL / 2)})[0] == "agrees"
    mixed = row(0.6)
    mixed[CLAIMED[0]] = 0.1
    assert verdict({"meru": row(0.5), "hycoclip": mixed})[0] == "partly"
    assert verdict({"meru": row(0.5), "hycoclip": row(0.2)})[0] == "disagrees"


def test_cli_eval_on_scenes(quick: Path, tmp_path: Path) -> None:
    out = tmp_path / "scenes.json"
    assert main(["eval", str(quick / "runs" / "hycoclip"), "--data",
                 f"scenes:{quick / 'scenes'}", "--max-samples", "60", "--no-progress",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n"] == 60 and res["n_boxes"] >= 60
    assert {"map", "f1"} <= set(res["multi_object"]) and "i2t_r1" in res["retrieval"]
    assert 0.0 <= res["part_whole"]["image"]["auc"] <= 1.0
