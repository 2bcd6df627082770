"""``clipspace compare``: models x data with gap and bias, and the gap-performance correlation
across models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy.stats import spearmanr

from clipspace.cli import main
from tests.helpers.runs import tiny_run


def _runs(tmp_path: Path, tiny_mad: Path) -> list[str]:
    out = []
    for i, preset in enumerate(("clip", "euclip", "meru")):
        run = tiny_run(tmp_path / preset, tiny_mad, preset, seed=i, mad_captions=True)
        out.append(str(run))
    return out


def test_compare_three_models(tmp_path: Path, tiny_mad: Path, capsys) -> None:
    runs, data = _runs(tmp_path, tiny_mad), f"mad:{tiny_mad}"
    assert main(["compare", *runs, "--data", data, "--out", str(tmp_path / "cmp"),
                 "--max-samples", "60", "--no-progress"]) == 0
    assert "Gap against performance" in capsys.readouterr().out
    res = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    rows = res["results"]
    assert len(rows) == 3
    for r in rows.values():
        assert {"zeroshot", "retrieval", "gap", "geometric", "moad"} <= set(r)
    geos = {r["geometric"]["geometry"] for r in rows.values()}
    assert geos == {"sphere", "euclidean", "lorentz"}
    corr = {(c["gap"], c["performance"]): c for c in res["correlations"]}
    c = corr[("gap.rmg", "zeroshot.mean_top1")]
    xs = [r["gap"]["rmg"] for r in rows.values()]
    ys = [r["zeroshot"]["mean_top1"] for r in rows.values()]
    assert c["n_models"] == 3 and c["data"] == data
    expected = spearmanr(xs, ys)[0]
    assert (c["spearman"] is None) == (expected != expected)  # NaN (a tie) -> JSON null
    if c["spearman"] is not None:
        assert c["spearman"] == pytest.approx(expected)
    assert (tmp_path / "cmp" / "compare.html").is_file()


def test_compare_bad_data_is_exit_2(tmp_path: Path, tiny_mad: Path, capsys) -> None:
    runs = _runs(tmp_path, tiny_mad)[:1]
    assert main(["compare", *runs, "--data", "nope:x", "--out", str(tmp_path / "c")]) == 2
    assert "nope:x" in capsys.readouterr().err
