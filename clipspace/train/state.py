"""The train state: model, optimizer, schedule, position (step, epoch, batches consumed) and
every RNG a step reads. ``checkpoint_state``/``restore`` turn it into what
``clipspace.checkpoint`` stores, so a run killed at any step resumes bit for bit (CPU)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from clipspace.train.optim import WarmupCosine


def capture_rng() -> dict[str, Any]:
    """Every RNG state a training step may read (python, numpy, torch CPU, CUDA), as tensors,
    numbers, strings and lists only, so ``state.pt`` loads with ``weights_only=True``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos),
                  int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(_python_state(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss),
                         float(cached)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state(state: Any) -> tuple:
    """``random.setstate`` wants tuples; a loaded checkpoint may hold lists."""
    version, internal, gauss = state
    return int(version), tuple(int(x) for x in internal), gauss


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainState:
    """Everything that changes during training. ``consumed``: batches of ``epoch`` used."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: WarmupCosine
    step: int = 0
    epoch: int = 0
    consumed: int = 0

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def checkpoint_state(self, rng_all: list[dict[str, Any]], world_size: int,
                         with_optimizer: bool = True) -> dict[str, Any]:
        """What a checkpoint stores besides the weights (``rng_all``: one entry per rank).
        ``with_optimizer=False``: without the optimizer (FSDP keeps it in the sharded part)."""
        optimizer = {"optimizer": self.optimizer.state_dict()} if with_optimizer else {}
        return {
            **optimizer,
            "scheduler": self.schedule.state_dict(),
            "epoch": self.epoch,
            "consumed": self.consumed,
            "world_size": world_size,
            "rng_all": rng_all,
        }

    def restore(self, saved: dict[str, Any], rank: int = 0,
                with_optimizer: bool = True) -> dict[str, Any] | None:
        """Load optimizer (unless ``with_optimizer=False``: FSDP loads it from its shards),
        schedule and position from a checkpoint's state; return this rank's RNG state (restore
        it once the run is set up, just before the first step)."""
        if with_optimizer:
            self.optimizer.load_state_dict(saved["optimizer"])
        self.schedule.load_state_dict(saved["scheduler"])
        self.step, self.epoch = int(saved["step"]), int(saved["epoch"])
        self.consumed = int(saved["consumed"])
        all_rng = saved.get("rng_all") or [saved.get("rng")]
        return all_rng[rank] if rank < len(all_rng) else all_rng[0]


__all__ = ["TrainState", "capture_rng", "restore_rng", "seed_everything"]
