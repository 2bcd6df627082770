"""Fake run directories (what ``clipspace train`` leaves) for the report tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def fake_run(root: Path, name: str, r1: float, lr: float) -> Path:
    """A finished-looking run directory ``root/name``: config, metrics, eval, analysis, a
    figure whose red channel tells the runs apart."""
    run = root / name
    (run / "figures").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"preset": name, "optim": {"lr": lr, "steps": 5}}))
    rows = [{"step": s, "loss": 3.0 - 0.1 * s, "logit_scale": 14.0 + s} for s in range(5)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (run / "eval.json").write_text(json.dumps({"retrieval": {"image_to_text": {"R@1": r1}}}))
    (run / "analysis.json").write_text(json.dumps({"gap": {"rmg": 0.4}}))
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :, 0] = 200 if name == "clip" else 50
    Image.fromarray(img).save(run / "figures" / "hist.png")
    return run
