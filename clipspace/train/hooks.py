"""Hooks run every ``run.eval_every`` steps and at the end of training (``--eval-every N``).

``ValLossHook``: the validation loss and each loss term. ``EvalHook``: the suites of
``run.eval_suites`` and the modality gap on (a random subset of) the validation split, from one
embedding pass; logged as ``val/<suite>.<metric>`` and ``val/gap.<metric>``.

``AnalysisHook`` (``run.analysis_every``): what Two Effects, One Trigger (Fig. 7b in Sec. 6.1;
entropy, Sec. 6.2) follows during training, ``dyn/<key>`` = ``analysis.entropy.dynamics_stats``
(L2M, RMG, logit entropy, alignment, uniformity) of one fixed set of pairs, at step 0, every N
steps and at the end. ``with_analysis`` runs it between steps (before the next batch), so it
never touches the training RNG or weights: one no-grad pass in eval mode.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from clipspace.analysis.entropy import dynamics_stats
from clipspace.analysis.gap import gap_stats
from clipspace.data.collate import Collate
from clipspace.eval.embed import embed, random_subset
from clipspace.eval.evaluate import evaluate_embeddings
from clipspace.eval.suites import SuiteContext
from clipspace.train.distributed import DistInfo, mean_scalars
from clipspace.train.engine import Job
from clipspace.train.logger import MetricsLogger, read_metrics
from clipspace.train.state import TrainState
from clipspace.tree import flatten

#: a fixed batch of the analysis subset: (images (B, C, H, W), tokens (B, L))
Pairs = tuple[Tensor, Tensor]


def numeric(tree: dict[str, Any], prefix: str) -> dict[str, float]:
    """The numbers of a nested result, flattened to ``prefix + dotted key``."""
    return {f"{prefix}{k}": float(v) for k, v in flatten(tree).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


class ValLossHook:
    """Mean validation loss (and each loss term) over a loader: ``{"val/loss": ..., ...}``.
    Under several processes each rank reads its shard of the validation data and the means are
    averaged over ranks (``info``), as the training loss is: a local-batch term such as MERU's
    entailment loss then equals its one-process value."""

    def __init__(self, batches: Callable[[], Any], device: torch.device,
                 autocast: Callable[[], Any], info: DistInfo | None = None) -> None:
        self.batches, self.device, self.autocast = batches, device, autocast
        self.info = info

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
        means = {f"val/{k}": v / n for k, v in sums.items()} if n else {}
        return mean_scalars(means, self.info) if self.info is not None else means


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


def analysis_pairs(dataset: Dataset, tokenizer: Any, n: int, batch_size: int = 256
                   ) -> list[Pairs]:
    """The fixed analysis subset, read once: a seeded random subset of ``n`` items of a
    map-style dataset (``eval.embed.random_subset``), the first ``n`` of an iterable one, as
    tokenized batches (captions and image transforms drawn once, never again)."""
    subset: Any = (list(itertools.islice(dataset, n)) if isinstance(dataset, IterableDataset)
                   else random_subset(dataset, n))
    loader = DataLoader(subset, batch_size=batch_size, shuffle=False,
                        collate_fn=Collate(tokenizer))
    return [(batch["image"], batch["text"]) for batch in loader]


class AnalysisHook:
    """``dyn/<key>`` of ``dynamics_stats(img, txt, model.logits(img, txt))`` on ``pairs``, due at
    step 0, every ``every`` steps and at ``last_step``, at most once per step."""

    def __init__(self, pairs: Sequence[Pairs], device: torch.device, every: int,
                 last_step: int) -> None:
        if not pairs or sum(len(img) for img, _ in pairs) < 2:
            raise ValueError("the analysis subset needs at least 2 pairs")
        self.pairs, self.device, self.every, self.last_step = list(pairs), device, every, last_step
        self.logged: set[int] = set()

    def due(self, step: int) -> bool:
        return step not in self.logged and (step % self.every == 0 or step == self.last_step)

    @torch.no_grad()
    def measure(self, model: nn.Module) -> dict[str, float]:
        """One no-grad pass in eval mode over the fixed pairs (the mode is restored)."""
        was_training = model.training
        model.eval()
        try:
            img = torch.cat([model.encode_image(x.to(self.device)).float() for x, _ in self.pairs])
            txt = torch.cat([model.encode_text(t.to(self.device)).float() for _, t in self.pairs])
            logits = model.logits(img, txt).cpu()
        finally:
            model.train(was_training)
        stats = dynamics_stats(img.cpu(), txt.cpu(), logits)
        return {f"dyn/{k}": float(v) for k, v in stats.items()}

    def __call__(self, model: nn.Module, step: int, run_dir: Path) -> dict[str, float]:
        if not self.due(step):
            return {}
        self.logged.add(step)
        return self.measure(model)


def logged_steps(run_dir: Path, key: str = "dyn/l2m") -> set[int]:
    """Steps of ``metrics.jsonl`` that already hold ``key`` (a resumed run does not log them
    twice)."""
    return {int(r["step"]) for r in read_metrics(run_dir) if key in r}


def with_analysis(job: Job, hook: AnalysisHook, state: TrainState, logger: MetricsLogger,
                  run_dir: Path) -> Job:
    """``job`` that logs the hook's metrics at ``state.step`` before each step when due: the
    model after ``state.step`` steps (step 0: before training); the time is not counted in
    samples_per_s. The engine's end-of-run hooks log the last step."""
    if state.step > 0:
        hook.logged |= logged_steps(run_dir)

    def before_step() -> None:
        job.before_step()
        metrics = hook(state.model, state.step, run_dir)
        if metrics:
            logger.log(state.step, metrics)

    return dataclasses.replace(job, before_step=before_step)


__all__ = ["AnalysisHook", "EvalHook", "ValLossHook", "analysis_pairs", "logged_steps",
           "numeric", "with_analysis"]
