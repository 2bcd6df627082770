"""reproduce adapt: the real --quick CLI once on a given base (the write-free second form), the
verdict rule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from clipspace.cli import main
from clipspace.experiments.adapt import KNOWLEDGE, METRICS, TOL, verdict
from clipspace.report import Section
from tests.helpers.runs import tiny_run

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def quick(tmp_path_factory, tiny_mad: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("adapt")
    base = tiny_run(root / "base", tiny_mad, "clip")
    out = root / "out"
    assert main(["reproduce", "adapt", "--quick", "--out", str(out), "--presets", "meru",
                 "--base", str(base)]) == 0
    return out, base


def test_quick_run_rows_configs_and_untouched_base(quick) -> None:
    out, base = quick
    res = json.loads((out / "results.json").read_text())
    assert list(res["rows"]) == ["pretrained clip", "meru LoRA", "meru scratch"]
    for row in res["rows"].values():
        assert set(row) == set(METRICS)
        assert all(math.isfinite(row[k]) for k in KNOWLEDGE)
    lora = json.loads((out / "runs" / "meru-lora" / "config.json").read_text())
    assert lora["adapt"]["base"] == str(base.resolve()) and lora["adapt"]["lora_r"] == 8
    assert lora["geometry"]["name"] == "lorentz"
    assert lora["model"]["image"]["kind"] == "vit"  # the base's towers, not the recipe's
    scratch = json.loads((out / "runs" / "meru-scratch" / "config.json").read_text())
    assert scratch["adapt"]["base"] == "" and scratch["optim"]["steps"] == res["steps"]
    assert not (base / "eval.json").exists()  # a user's base is never written into
    sec = Section.load(out / "section.json")
    assert (sec.verdict, sec.finding) == verdict(res["rows"], ["meru"])
    assert (out / "report" / "report.html").exists()


def test_verdict_rule() -> None:
    def row(x: float) -> dict[str, float]:
        return {m: x for m in METRICS}

    rows = {"meru LoRA": row(0.5), "meru scratch": row(0.5 + TOL / 2),
            "euclip LoRA": row(0.2), "euclip scratch": row(0.4)}
    assert verdict(rows, ["meru"])[0] == "agrees"
    assert verdict(rows, ["meru", "euclip"])[0] == "partly"
    assert verdict(rows, ["euclip"])[0] == "disagrees"
