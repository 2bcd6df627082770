"""A short MAD run learns digits: image->text Recall@1 on held-out digits, counted at digit level
(the retrieved test caption names the image's digit), is far above chance (about 0.1).

Setup: MAD from 200 embedded MNIST digits (160 train / 40 held-out digits x 24 variants),
captions = digit + 1 attribute, a tiny ViT (width 64, depth 2, patch 7) + 1-layer text tower,
clip preset, 300 steps of batch 128 (38k samples).
Measured (2-core CPU shared with ~7 other jobs, 255 s of training): held-out digit R@1 0.412,
train-split digit R@1 0.539; 150 steps gave 0.213. Threshold 0.3 = 3x chance with a margin
below the measurement. On an idle machine the run takes about a minute.
"""

from __future__ import annotations

import os

import pytest
import torch

from clipspace.checkpoint import load_weights
from clipspace.config import resolve
from clipspace.data.build import build_loader
from clipspace.data.tokenizer import get_tokenizer
from clipspace.models import create_model
from clipspace.train import train

STEPS = int(os.environ.get("CLIPSPACE_MAD_STEPS", "300"))
MIN_DIGIT_R1 = 0.3  # measured 0.412 at 300 steps (module docstring); chance is about 0.1
TOWERS = {
    "model.name": "custom", "model.embed_dim": 64, "model.image.kind": "vit",
    "model.image.width": 64, "model.image.depth": 2, "model.image.heads": 2,
    "model.image.patch_size": 7, "model.text.width": 64, "model.text.depth": 1,
    "model.text.heads": 2, "model.text.vocab_size": 512,
}


@torch.no_grad()
def digit_recall_at_1(model, loader) -> float:
    """Fraction of test images whose most similar test caption carries the same digit."""
    imgs, txts, digits = [], [], []
    for batch in loader:
        imgs.append(model.encode_image(batch["image"]))
        txts.append(model.encode_text(batch["text"]))
        digits.append(batch["digit"])
    img, txt, digit = torch.cat(imgs), torch.cat(txts), torch.cat(digits)
    best = model.similarity(img, txt).argmax(dim=1)
    return float((digit[best] == digit).float().mean())


@pytest.mark.slow
def test_short_mad_run_learns_digits(tmp_path_factory: pytest.TempPathFactory) -> None:
    from clipspace.data.mad_generate import generate_mad

    mad = generate_mad(tmp_path_factory.mktemp("madr") / "mad", limit=200, progress=False)
    cfg = resolve("clip", {
        **TOWERS, "data.train": f"mad:{mad}", "data.batch_size": 128, "data.num_attrs": 1,
        "optim.steps": STEPS, "optim.warmup_steps": 10, "optim.lr": 2e-3,
        "optim.weight_decay": 0.05, "run.output_dir": str(tmp_path_factory.mktemp("runs")),
        "run.name": "mad", "run.progress": False, "run.tensorboard": False,
    })
    run = train(cfg)
    model = create_model(cfg)
    load_weights(model, run / "checkpoints" / f"step_{STEPS}")
    model.eval()
    tok = get_tokenizer(run / "tokenizer.json", context_length=model.context_length)
    loader = build_loader(cfg.data.train, cfg.data, tok, "val", shuffle=False, drop_last=False)
    r1 = digit_recall_at_1(model, loader)
    print(f"digit R@1 after {STEPS} steps: {r1:.3f}")
    assert r1 > MIN_DIGIT_R1, r1
