"""Training on an open_clip-style CSV with corrupt images: skipped, counted, reported per epoch."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clipspace.errors import DataError
from clipspace.train import train
from tests.helpers.configs import tiny_config


def _write_csv(root, n_good: int, n_bad: int):
    rng = np.random.default_rng(0)
    rows = ["filepath\ttitle"]
    for i in range(n_good):
        arr = rng.integers(0, 255, (28, 28, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / f"g{i}.png")
        rows.append(f"g{i}.png\t{'red' if i % 2 else 'blue'} digit {i % 10}")
    for i in range(n_bad):
        (root / f"b{i}.png").write_bytes(b"not a png")
        rows.append(f"b{i}.png\tbroken {i}")
    (root / "train.tsv").write_text("\n".join(rows) + "\n")
    return root / "train.tsv"


def test_csv_training_reports_bad_images(tmp_path, tiny_mad, capsys):
    csv = _write_csv(tmp_path, n_good=60, n_bad=1)
    cfg = tiny_config(
        "clip", tiny_mad, tmp_path / "runs", data__train=f"csv:{csv}",
        data__tokenizer=str(tiny_mad / "tokenizer.json"), data__batch_size=16,
        data__max_bad_fraction=0.05, optim__steps=8,
    )
    run = train(cfg)
    assert (run / "checkpoints").exists()
    err = capsys.readouterr().err
    assert "b0.png" in err or "bad" in err.lower()  # the epoch summary names the skipped file


def test_csv_training_stops_above_bad_fraction(tmp_path, tiny_mad):
    csv = _write_csv(tmp_path, n_good=30, n_bad=10)
    cfg = tiny_config(
        "clip", tiny_mad, tmp_path / "runs", data__train=f"csv:{csv}",
        data__tokenizer=str(tiny_mad / "tokenizer.json"), data__batch_size=8,
        data__max_bad_fraction=0.01, optim__steps=20,
    )
    with pytest.raises(DataError, match="bad"):
        train(cfg)
