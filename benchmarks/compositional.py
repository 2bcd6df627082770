"""Step time of HyCoCLIP's compositional objective against MERU's at the same batch of MAD
scenes (issue 16's target: within 2x, boxes included).

Both presets train the same ``mad-tiny`` towers at 28 px on the same batches of ``--batch``
scenes (1-4 digits each, about 2.5 boxes per scene): meru encodes the whole scenes and captions
only (its objective ignores boxes), hycoclip also every box crop and box caption and adds the
box contrastive and four cone terms. A step is forward, loss, backward and AdamW; the median of
``--steps`` steps after two warm-up steps. Machine-independent readout: the time ratios against
meru on the B wholes and against meru with the M boxes as extra pairs in its batch (the same
B + M images and texts encoded as hycoclip: the cost of the objective itself).

Run: OMP_NUM_THREADS=2 python benchmarks/compositional.py [--batch 128] [--steps 10]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import torch

from clipspace.config import resolve
from clipspace.data.build import build_loader, resolve_tokenizer, set_loader_epoch
from clipspace.data.mad_generate import generate_mad
from clipspace.data.mad_scenes_generate import generate_mad_scenes
from clipspace.models import create_model
from clipspace.train.accumulation import plain_step
from clipspace.train.optim import build_optimizer


def scene_batches(root: Path, batch: int, n: int) -> tuple[list[dict], int]:
    mad = generate_mad(root / "mad", limit=100, progress=False)
    scenes = generate_mad_scenes(mad, root / "scenes", num_train=batch * n, num_test=10,
                                 progress=False)
    cfg = resolve("meru", {"data.train": f"scenes:{scenes}", "data.batch_size": batch})
    tok = resolve_tokenizer(cfg.data)
    loader = build_loader(cfg.data.train, cfg.data, tok, image_size=28)
    set_loader_epoch(loader, 0, 0)
    return list(loader), tok.context_length


def step_times(preset: str, batches: list[dict], context: int,
               boxes_as_pairs: bool = False) -> list[float]:
    """Step times of ``preset``; ``boxes_as_pairs``: the boxes join the batch as extra
    image-text pairs (meru at the same number of encoded images as hycoclip)."""
    torch.manual_seed(0)
    cfg = resolve(preset, {"model.name": "mad-tiny", "model.text.context_length": context})
    model = create_model(cfg).train()
    opt = build_optimizer(model, cfg.optim)
    times = []
    for i, b in enumerate(batches):
        images, texts = b["image"], b["text"]
        parts = (b["box_image"], b["box_text"], b["box_scene"])
        if boxes_as_pairs:
            images, texts = torch.cat([images, b["box_image"]]), torch.cat([texts, b["box_text"]])
        start = time.perf_counter()
        plain_step(model, images, texts, contextlib.nullcontext, parts)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        batches, context = scene_batches(Path(tmp), args.batch, args.steps + 2)
    boxes = statistics.mean(len(b["box_scene"]) for b in batches) / args.batch
    t = {p: statistics.median(step_times(p, batches, context)) for p in ("meru", "hycoclip")}
    t["meru+boxes"] = statistics.median(step_times("meru", batches, context, True))
    print(f"batch {args.batch} scenes ({boxes:.2f} boxes per scene), median of {args.steps}:")
    print(f"  meru       {t['meru'] * 1e3:8.1f} ms/step (the B wholes)")
    print(f"  meru+boxes {t['meru+boxes'] * 1e3:8.1f} ms/step (B wholes + M boxes as pairs)")
    print(f"  hycoclip   {t['hycoclip'] * 1e3:8.1f} ms/step (B wholes + M boxes, all its terms)")
    print(f"  hycoclip / (meru+boxes) = {t['hycoclip'] / t['meru+boxes']:.2f} (target <= 2); "
          f"hycoclip / meru = {t['hycoclip'] / t['meru']:.2f} "
          f"({1 + boxes:.2f}x the images encoded)")


if __name__ == "__main__":
    main()
