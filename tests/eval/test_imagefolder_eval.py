"""Zero-shot and linear probe on ``imagefolder:DIR`` (CLIP_benchmark's metric names), from the
CLI and from Python; real COCO images grouped by their HierarCaps level-1 caption."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from clipspace.cli import main
from clipspace.eval import evaluate
from tests.data.test_imagefolder import make_folder
from tests.helpers.runs import tiny_run

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "hierarcaps"


def _run(tmp_path: Path, tiny_mad: Path, preset: str = "clip") -> Path:
    run = tiny_run(tmp_path / "run", tiny_mad, preset)
    return run


def test_cli_eval_imagefolder(tmp_path: Path, tiny_mad: Path, capsys) -> None:
    root = make_folder(tmp_path / "f", {"cat": 6, "dog": 6, "cow": 6})
    templates = tmp_path / "templates.txt"
    templates.write_text("{c}\n{c}-red\n")
    run = _run(tmp_path, tiny_mad, "atmg")
    assert main(["eval", str(run), "--data", f"imagefolder:{root}", "--templates",
                 str(templates), "--suite", "zeroshot,linear_probe,retrieval",
                 "--no-progress"]) == 0
    res = json.loads(capsys.readouterr().out)
    zs = res["zeroshot"]
    assert set(zs["class"]) == {"top1", "top5", "mean_per_class_recall"}
    assert zs["class"]["top5"] == 1.0  # 3 classes: the true one is always in the top 5
    assert zs["ensemble"] == "score"  # atmg is angle-scored: the score ensemble by default
    assert 0 <= res["linear_probe"]["class"]["accuracy"] <= 1
    assert res["n"] == 18 and 0 <= res["retrieval"]["i2t_r1"] <= 1
    # a missing folder: a clear error and exit 2
    assert main(["eval", str(run), "--data", f"imagefolder:{tmp_path / 'nope'}"]) == 2
    assert "not a directory" in capsys.readouterr().err


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/hierarcaps not available")
def test_real_coco_images_as_an_image_folder(tmp_path: Path, tiny_mad: Path) -> None:
    """The shared COCO images, one class per frequent HierarCaps level-1 caption."""
    with open(SHARED / "hierarcaps_test.csv", newline="", encoding="utf-8") as fh:
        rows = [(r["captions"].split(" => ")[0].strip(), r["image_url"].rsplit("/", 1)[-1])
                for r in csv.DictReader(fh)]
    common = [c for c, n in Counter(c for c, _ in rows).most_common(4)]
    root = tmp_path / "coco"
    for cls, name in rows:
        if cls in common and (SHARED / "images" / name).is_file():
            (root / cls).mkdir(parents=True, exist_ok=True)
            os.symlink(SHARED / "images" / name, root / cls / name)
    run = _run(tmp_path, tiny_mad)
    from clipspace.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(run)
    res = evaluate(model, f"imagefolder:{root}", ["zeroshot", "linear_probe"], tokenizer=tok,
                   progress=False)
    n = sum(1 for _ in root.rglob("*.jpg"))
    assert res["n"] == n >= 40
    assert res["zeroshot"]["ensemble"] == "prototype"
    acc = res["zeroshot"]["class"]
    assert 0 <= acc["mean_per_class_recall"] <= 1 and acc["top1"] <= acc["top5"] == 1.0
