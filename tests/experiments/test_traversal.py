"""reproduce traversal: the real --quick CLI once (clip and meru, the two the claim compares),
the caption pool, the per-model statistics, the verdict rule, the option parser."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from clipspace.cli import main
from clipspace.config import ConfigError
from clipspace.data import mad_schema as S
from clipspace.experiments.traversal import parse_presets, path_stats, sub_captions, verdict
from clipspace.report import Section


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("traversal") / "out"
    assert main(["reproduce", "traversal", "--quick", "--presets", "clip,meru", "--out",
                 str(out)]) == 0
    return out


def test_quick_run_files_and_numbers(quick) -> None:
    res = json.loads((quick / "results.json").read_text())
    assert set(res["stats"]) == {"clip", "meru"} and res["steps"] == 50
    for s in res["stats"].values():
        assert len(s["kept"]) == 200  # every evaluated test image is traversed
        assert s["kept_mean"] == pytest.approx(np.mean(s["kept"]))
        assert sum(s["kept_hist"]) == 200 and 0.0 <= s["empty_share"] <= 1.0
        assert max(s["kept"]) <= 50  # at most one caption per step
    assert res["stats"]["clip"]["empty_share"] == 0.0  # the sphere keeps a caption every step
    assert (quick / "kept_histogram.png").stat().st_size > 1000
    assert (quick / "report" / "report.html").exists()


def test_quick_run_verdict_and_section_follow_the_rule(quick) -> None:
    res = json.loads((quick / "results.json").read_text())
    v, finding = verdict(res["stats"])
    assert v == res["verdict"]
    sec = Section.load(quick / "section.json")
    assert sec.verdict == v and sec.finding.endswith(finding)
    assert [r[0] for r in sec.tables[0].rows] == ["clip", "meru"]
    examples = sec.tables[1]
    assert examples.header[:2] == ["image", "caption"] and len(examples.rows) == 4
    for row, i in zip(examples.rows, range(4)):
        path = res["examples"]["meru"][i]
        assert row[3] == (" > ".join(path) or "(none)")
    assert sec.headline["meru: captions kept per image"] == pytest.approx(
        res["stats"]["meru"]["kept_mean"])


def test_sub_captions_keep_the_digit_and_drop_attributes() -> None:
    a, d, b = S.word("colour", 1), S.word("digit", 3), S.word("stroke", 1)
    got = sub_captions(f"{a}-{d}-{b}")
    assert got == [d, f"{a}-{d}", f"{d}-{b}", f"{a}-{d}-{b}"]
    assert sub_captions(d) == [d]


def test_path_stats_counts_truth_and_generality() -> None:
    labels = {"digit": np.array([3, 5]), "stroke": np.array([0, 0]),
              "swelling": np.array([0, 0]), "fracture": np.array([0, 0]),
              "scale": np.array([0, 0]), "colour": np.array([1, 0])}
    red = S.word("colour", 1)
    paths = [[f"3-{red}", "3"], []]
    s = path_stats(paths, labels)
    assert s["kept"] == [2, 0] and s["kept_mean"] == 1.0 and s["empty_share"] == 0.5
    assert s["true_share"] == 1.0 and s["generic_steps"] == 1.0 and s["narrowing"] == 1.0
    wrong = path_stats([["5", f"3-{red}"]], {k: v[:1] for k, v in labels.items()})
    assert wrong["true_share"] == 0.5 and wrong["generic_steps"] == 0.0
    assert wrong["narrowing"] == -1.0


def _stats(kept: float, narrowing: float, multi: int = 5) -> dict:
    return {"kept_mean": kept, "narrowing": narrowing, "multi_paths": multi,
            "true_share": 0.5, "generic_steps": 0.5}


def test_verdict_rule() -> None:
    assert verdict({"clip": _stats(1, 0), "meru": _stats(3, 1)})[0] == "agrees"
    assert verdict({"clip": _stats(4, 0), "meru": _stats(3, 1)})[0] == "partly"
    assert verdict({"clip": _stats(1, 0), "meru": _stats(3, -1)})[0] == "partly"
    assert verdict({"clip": _stats(4, 0), "meru": _stats(3, 0)})[0] == "disagrees"
    assert verdict({"clip": _stats(1, 0), "meru": _stats(3, math.nan, 0)})[0] == \
        "not comparable"
    assert verdict({"meru": _stats(3, 1)})[0] == "not comparable"


def test_presets_option() -> None:
    assert parse_presets("clip, meru") == ["clip", "meru"]
    with pytest.raises(ConfigError, match="--presets"):
        parse_presets("clip,hyperbolic")


def test_bad_option_exits_2(tmp_path) -> None:
    assert main(["reproduce", "traversal", "--presets", "nope", "--out",
                 str(tmp_path / "o")]) == 2
