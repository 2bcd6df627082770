"""LoRA against full fine-tuning on vit-b-16-sized towers (issue 15's targets): the share of
trainable parameters with r = 8 (target: under 2 % of the model) and the training step time of
both at the same batch (target: LoRA below full fine-tuning).

The model is clipspace's ``vit-b-16`` shape (ViT-B/16 image tower, 12-layer 512-wide text tower)
with random weights, adapted into meru (``models.adapt``): LoRA r = 8 on every attention and MLP
linear layer of both towers, against both towers unlocked. A step is forward, loss, backward and
an AdamW step over the trainable parameters, at batch ``--batch`` of 224 x 224 images; the median
of ``--steps`` steps after one warm-up step. Machine-independent readout: the time ratio.

Run: OMP_NUM_THREADS=2 python benchmarks/adapt.py [--batch 8] [--steps 3] [--r 8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from clipspace.config import resolve
from clipspace.models import create_model
from clipspace.models.adapt import adapt_model, trainable_count
from clipspace.train.optim import build_optimizer


def build(mode: str, r: int) -> torch.nn.Module:
    torch.manual_seed(0)
    shape = {"model.name": "vit-b-16"}
    base = create_model("clip", **shape)
    over = {**shape, "adapt.base": "benchmark"}
    over.update({"adapt.lora_r": r} if mode == "lora" else {"adapt.unlock": "both"})
    return adapt_model(base, resolve("meru", over)).train()


def step_times(model: torch.nn.Module, batch: int, steps: int) -> list[float]:
    cfg = resolve("meru")
    opt = build_optimizer(model, cfg.optim)
    images = torch.randn(batch, 3, 224, 224)
    tokens = torch.randint(3, 1000, (batch, model.context_length))
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        out = model(images, tokens)
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step warms up allocator and kernels
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--r", type=int, default=8)
    args = ap.parse_args()
    rows = {}
    for mode in ("lora", "full"):
        model = build(mode, args.r)
        n, total = trainable_count(model)
        t = statistics.median(step_times(model, args.batch, args.steps))
        rows[mode] = (n, total, t)
        print(f"{mode:>4}: {n:>12,} of {total:,} parameters train ({100 * n / total:.2f} %), "
              f"step {t:.2f} s at batch {args.batch}", flush=True)
    ratio = rows["lora"][2] / rows["full"][2]
    print(f"LoRA r={args.r}: {100 * rows['lora'][0] / rows['lora'][1]:.2f} % of the model "
          f"trains (target < 2 %); step time LoRA / full = {ratio:.2f} (target < 1)")


if __name__ == "__main__":
    main()
