"""Hooks run every ``run.eval_every`` steps and at the end of training (``--eval-every N``).

``ValLossHook``: the validation loss and each loss term. ``EvalHook``: the suites of
``run.eval_suites`` and the modality gap on (a random subset of) the validation split, from one
embedding pass; logged as ``val/<suite>.<metric>`` and ``val/gap.<metric>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from clipspace.analysis.gap import gap_stats
from clipspace.eval.embed import embed
from clipspace.eval.evaluate import evaluate_embeddings
from clipspace.eval.suites import SuiteContext
from clipspace.tree import flatten


def numeric(tree: dict[str, Any], prefix: str) -> dict[str, float]:
    """The numbers of a nested result, flattened to ``prefix + dotted key``."""
    return {f"{prefix}{k}": float(v) for k, v in flatten(tree).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


class ValLossHook:
    """Mean validation loss (and each loss term) over a loader: ``{"val/loss": ..., ...}``."""

    def __init__(self, batches: Callable[[], Any], device: torch.device,
                 autocast: Callable[[], Any]) -> None:
        self.batches, self.device, self.autocast = batches, device, autocast

    @torch.no_grad()
    def __call__(self, model: nn.Module, step: int, run_dir: Path) -> dict[str, float]:
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        n = 0
        for batch in self.batches():
            with self.autocast():
                out = model(batch["image"].to(self.device), batch["text"].to(self.device))
            for key, value in out.items():
                if key == "loss" or key.startswith("loss/"):
                    sums[key] = sums.get(key, 0.0) + float(value)
            n += 1
        model.train(was_training)
        return {f"val/{k}": v / n for k, v in sums.items()} if n else {}


class EvalHook:
    """Suites + modality gap on the validation split (one embedding pass per call)."""

    def __init__(self, dataset: Dataset, tokenizer: Any, suites: Sequence[str],
                 device: torch.device, max_samples: int = 1000) -> None:
        self.dataset, self.tokenizer, self.suites = dataset, tokenizer, list(suites)
        self.device, self.max_samples = device, max_samples

    @torch.no_grad()
    def __call__(self, model: nn.Module, step: int, run_dir: Path) -> dict[str, float]:
        was_training = model.training
        model.eval()
        try:
            emb = embed(model, self.dataset, self.tokenizer, device=self.device,
                        max_samples=self.max_samples, progress=False)
            ctx = SuiteContext(model=model, emb=emb, tokenizer=self.tokenizer, device=self.device)
            result = evaluate_embeddings(ctx, self.suites)
            for suite in result.values():
                suite.pop("traversals", None)
            result["gap"] = gap_stats(emb.image, emb.text)
        finally:
            model.train(was_training)
        return numeric(result, "val/")


__all__ = ["EvalHook", "ValLossHook", "numeric"]
