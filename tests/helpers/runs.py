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


def tiny_run(out: Path, mad: Path, preset: str = "clip", seed: int = 0,
             mad_captions: bool = False) -> Path:
    """An untrained tiny model (``TINY``) of ``preset`` saved as a run directory ``out`` with the
    tiny MAD's tokenizer; ``mad_captions``: its config says it trained on ``mad`` (evaluation
    then shapes MAD captions like its training captions)."""
    import shutil

    import torch

    from clipspace.models import create_model, save_pretrained
    from tests.helpers.configs import TINY

    torch.manual_seed(seed)
    extra = {"data.train": f"mad:{mad}"} if mad_captions else {}
    run = save_pretrained(create_model(preset, **TINY, **extra), out)
    shutil.copy(mad / "tokenizer.json", run / "tokenizer.json")
    return run
