"""What the experiments share: the result table and the one evaluate-a-run function
(``clipspace demo`` end to end: tests/cli/test_demo.py)."""

from __future__ import annotations

import json
from pathlib import Path

from clipspace.eval import evaluate
from clipspace.experiments.common import comparison_table, ensure_mad, evaluate_run
from clipspace.models import load_model_and_tokenizer
from tests.helpers.runs import tiny_run


def test_comparison_table_handles_missing_metrics():
    table = comparison_table({"a": {"zeroshot": {"digit": {"top1": 0.5}}}, "b": {}})
    lines = table.splitlines()
    assert len(lines) == 3 and "0.500" in lines[1] and lines[2].split()[1] == "-"


def _run_dir(tmp_path: Path, mad: Path) -> Path:
    run = tiny_run(tmp_path / "run", mad, "meru", mad_captions=True)
    return run


def test_evaluate_run_matches_evaluate_on_a_random_subset(tmp_path: Path, tiny_mad: Path):
    """One embedding pass for every suite and both hierarchy roots; the empty-root hierarchy of
    a random subset (what reproduce radial reports) equals evaluate(hierarchy_root="empty") of
    that subset, i.e. chains are keyed by the subset's positions."""
    run = _run_dir(tmp_path, tiny_mad)
    data = f"mad:{tiny_mad}"
    res = evaluate_run(run, data, suites=("retrieval", "hierarchy"), max_samples=50,
                       progress=False, empty_root=True, analyse=False)
    model, tok = load_model_and_tokenizer(run)
    ref = evaluate(model, data, ["hierarchy"], tokenizer=tok, max_samples=50, progress=False,
                   hierarchy_root="empty")["hierarchy"]
    got = res["hierarchy_empty_root"]
    for key in ("precision", "recall", "tau_d", "root_dist_by_level"):
        assert got[key] == ref[key], key
    assert got["root"] == "empty" and res["hierarchy"]["root"] == "default"
    assert json.loads((run / "eval.json").read_text())["n"] == 50


def test_ensure_mad_reuses_a_complete_dataset_of_that_size(tmp_path: Path) -> None:
    root = ensure_mad(tmp_path / "mad", digits=3, workers=1, seed=0, progress=False)
    manifest = (root / "manifest.json").read_bytes()
    stamp = (root / "manifest.json").stat().st_mtime_ns
    assert ensure_mad(root, digits=3, workers=1, seed=0, progress=False) == root
    assert (root / "manifest.json").stat().st_mtime_ns == stamp  # not regenerated
    ensure_mad(root, digits=4, workers=1, seed=0, progress=False)  # another size: regenerated
    assert (root / "manifest.json").read_bytes() != manifest
