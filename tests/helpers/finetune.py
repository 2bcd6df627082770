"""Hand-made hierarchical chains, HierarCaps CSVs and configs for the fine-tuning tests."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from clipspace.config import FINETUNE_PRESETS, resolve
from clipspace.data.chains import Chain
from tests.helpers.hf import random_image

CHAINS = [
    Chain(["a dog", "a small dog", "a small brown dog", "a small brown dog on grass"],
          ["a cat", "a big dog", "a small black dog", "a small brown dog on a bed"]),
    Chain(["a car", "a red car", "a red car parked", "a red car parked by the road"],
          ["a bird", "a blue car", "a red car moving", "a red car parked in a garage"]),
    Chain(["a cat", "a black cat", "a black cat sleeping", "a black cat sleeping on a bed"],
          ["a dog", "a white cat", "a black cat eating", "a black cat sleeping on grass"]),
]
# every caption of CHAINS: the corpus of the tiny HF CLIP's tokenizer (``finetune_hf_clip``)
CHAINS_CORPUS = [c for ch in CHAINS for c in (*ch.positive, *ch.negative)]


def ft_config(method: str = "re", **extra: object):
    over = dict(FINETUNE_PRESETS[method])
    over.update({"run.progress": False, "run.tensorboard": False, "optim.lr": 1e-3,
                 "data.batch_size": 2})
    over.update(extra)
    return resolve("clip", over)


def write_train_csv(path: Path) -> Path:
    """HierarCaps training CSV (positive, negative chains) of CHAINS x 3."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["positive", "negative"])
        for ch in CHAINS * 3:
            w.writerow([" => ".join(ch.positive), " => ".join(ch.negative)])
    return path


def write_test_csv(root: Path) -> tuple[Path, Path]:
    """HierarCaps test CSV of CHAINS + a folder of random COCO-named images: (csv, images)."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    csv_path = root / "test.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "captions", "image_url"])
        for i, ch in enumerate(CHAINS):
            name = f"COCO_val2014_{i:012d}.png"
            random_image(40, 48, seed=i).save(images / name)
            w.writerow([str(i), " => ".join(ch.positive), f"http://x/val2014/{name}"])
    return csv_path, images


def model_state(run_dir: Path) -> dict[str, torch.Tensor]:
    """A copy of the state dict of the model saved in ``run_dir``."""
    from clipspace.models import create_model

    return {k: v.clone() for k, v in create_model(pretrained=str(run_dir)).state_dict().items()}
