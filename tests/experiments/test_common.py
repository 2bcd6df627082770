"""What the experiments share: the result table and the one evaluate-a-run function
(``clipspace demo`` end to end: tests/cli/test_demo.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from clipspace.eval import evaluate
from clipspace.experiments.common import comparison_table, evaluate_run
from clipspace.models import create_model, load_model_and_tokenizer, save_pretrained
from tests.helpers.configs import TINY


def test_comparison_table_handles_missing_metrics():
    table = comparison_table({"a": {"zeroshot": {"digit": {"top1": 0.5}}}, "b": {}})
    lines = table.splitlines()
    assert len(lines) == 3 and "0.500" in lines[1] and lines[2].split()[1] == "-"


def _run_dir(tmp_path: Path, mad: Path) -> Path:
    torch.manual_seed(0)
    model = create_model("meru", **TINY, **{"data.train": f"mad:{mad}"})
    run = save_pretrained(model, tmp_path / "run")
    shutil.copy(mad / "tokenizer.json", run / "tokenizer.json")
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
