"""The one training engine: a job supplies its batches and its loss, the engine does the rest.

Per optimizer step: ``job.step(batch)`` (forward + backward, returns the loss terms), gradients
averaged over ranks, clipped, AdamW step with the warmup-cosine lr, position advanced, metrics
logged (NaN/Inf stop the run), progress shown, hooks run every ``run.eval_every`` steps,
checkpoints every ``run.save_every`` steps and at the end. Training (``train.loop``) and text-
tower fine-tuning (``train.finetune``) are two jobs of this engine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from clipspace import checkpoint as ckpt
from clipspace.config import Config
from clipspace.errors import DataError
from clipspace.train.distributed import DistInfo, average_gradients, barrier, mean_scalars
from clipspace.train.logger import MetricsLogger
from clipspace.train.optim import clip_gradients
from clipspace.train.state import TrainState, capture_rng

#: hook(model, step, run_dir) -> metrics to log
Hook = Callable[[nn.Module, int, Path], dict[str, float]]
#: checkpointer(state, rng_all, final): writes step_<N> on every rank (FSDP's sharded layout)
Checkpointer = Callable[[TrainState, list[dict[str, Any]], bool], Any]


@dataclass
class Job:
    """What a training job supplies.

    ``batches(epoch, skip)``: the batches of ``epoch`` from batch ``skip`` on (a pure function
    of the seed and the epoch, so a resumed run sees the same data). ``step(batch)``: forward +
    backward of one batch, returns the loss dict ("loss", "loss/<term>", scalars).
    ``end_epoch()`` runs after each complete epoch and once at the end. ``before_step()`` runs
    before each step, once its batch is loaded (its time is not counted in samples_per_s).
    ``empty_error``: the message of the DataError raised when an epoch yields no batch.
    ``reduces_gradients``: the step's backward already averages the gradients over ranks
    (DistributedDataParallel, FSDP's reduce-scatter); otherwise the engine does (one flat
    all-reduce)."""

    name: str
    batches: Callable[[int, int], Iterable[Any]]
    step: Callable[[Any], dict[str, Any]]
    samples_per_step: int
    empty_error: str
    end_epoch: Callable[[], None] = field(default=lambda: None)
    before_step: Callable[[], None] = field(default=lambda: None)
    reduces_gradients: bool = False


def scalars(out: dict[str, Any]) -> dict[str, float]:
    """The one-element tensors and numbers of a loss dict, as floats."""
    res = {}
    for key, value in out.items():
        if torch.is_tensor(value) and value.numel() == 1:
            res[key] = float(value)
        elif isinstance(value, (int, float)):
            res[key] = float(value)
    return res


def optimizer_step(state: TrainState, cfg: Config, info: DistInfo,
                   reduced: bool = False) -> dict[str, float]:
    """Average the gradients over ranks (unless ``reduced`` already), clip, set the lr, step,
    zero the gradients."""
    params = state.trainable()
    if not reduced:
        average_gradients(params, info)
    grad_norm = clip_gradients(params, cfg.optim.grad_clip)
    lr = state.schedule.apply()
    state.optimizer.step()
    state.optimizer.zero_grad(set_to_none=True)
    state.schedule.step()
    state.step += 1
    state.consumed += 1
    return {"lr": lr, "grad_norm": grad_norm, "epoch": state.epoch}


class Engine:
    """Runs a ``Job`` on a ``TrainState`` inside a run directory (see module docstring).
    ``checkpointer``: writes the checkpoints instead of rank 0's ``save_checkpoint`` (FSDP)."""

    def __init__(self, state: TrainState, cfg: Config, info: DistInfo, run_dir: Path,
                 logger: MetricsLogger, hooks: list[Hook] | None = None,
                 checkpointer: Checkpointer | None = None) -> None:
        self.state, self.cfg, self.info = state, cfg, info
        self.checkpointer = checkpointer
        self.run_dir, self.logger, self.hooks = run_dir, logger, list(hooks or [])
        self.bar: Any = None
        self._last = time.perf_counter()

    def run(self, job: Job) -> None:
        """Train until ``optim.steps``; run the hooks and save a checkpoint at the end."""
        total = self.cfg.optim.steps
        if self.cfg.run.progress and self.info.is_main and self.state.step < total:
            self.bar = tqdm(total=total, initial=self.state.step, desc=job.name, unit="step")
        self._last = time.perf_counter()
        while self.state.step < total and not self._run_epoch(job):
            pass
        if self.bar is not None:
            self.bar.close()
        job.end_epoch()  # the last (partial) epoch
        self.run_hooks()
        self.save(final=True)
        self.logger.close()

    def _run_epoch(self, job: Job) -> bool:
        """One epoch from the current position; True once ``optim.steps`` is reached."""
        state = self.state
        got_batch = state.consumed > 0  # a resumed epoch may have no batch left
        for batch in job.batches(state.epoch, state.consumed):
            got_batch = True
            paused = time.perf_counter()
            job.before_step()
            self._last += time.perf_counter() - paused
            metrics = scalars(job.step(batch))
            metrics = mean_scalars(metrics, self.info)
            metrics.update(optimizer_step(state, self.cfg, self.info, job.reduces_gradients))
            self._after_step(metrics, job.samples_per_step)
            if state.step >= self.cfg.optim.steps:
                return True
            if self.cfg.run.save_every > 0 and state.step % self.cfg.run.save_every == 0:
                self.save()
        if not got_batch:
            raise DataError(job.empty_error)
        job.end_epoch()
        state.epoch += 1
        state.consumed = 0
        return False

    def _after_step(self, metrics: dict[str, float], samples: int) -> None:
        step, run = self.state.step, self.cfg.run
        if not math.isfinite(metrics.get("loss", 0.0)):
            raise FloatingPointError(f"non-finite loss {metrics.get('loss')} at step {step}")
        now = time.perf_counter()
        metrics["samples_per_s"] = samples / max(now - self._last, 1e-9)
        self._last = now
        self.logger.log(step, metrics)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{metrics['loss']:.4f}",
                                 sps=f"{metrics['samples_per_s']:.0f}")
        if run.log_every > 0 and step % run.log_every == 0:
            self.logger.flush()
        if run.eval_every > 0 and step % run.eval_every == 0 and step < self.cfg.optim.steps:
            self.run_hooks()

    def run_hooks(self) -> None:
        """Every hook's metrics, logged at the current step."""
        for hook in self.hooks:
            self.logger.log(self.state.step, hook(self.state.model, self.state.step,
                                                  self.run_dir) or {})
        self.logger.flush()
        self._last = time.perf_counter()  # samples_per_s counts training steps only

    def save(self, final: bool = False) -> None:
        """Checkpoint ``step_<N>`` of the current state (every rank's RNG, written by rank 0;
        with a ``checkpointer``, by it on every rank; ``final``: the run's last one)."""
        self.logger.flush()
        rng_all = gather_rng(capture_rng(), self.info)
        if self.checkpointer is not None:
            self.checkpointer(self.state, rng_all, final)
        elif self.info.is_main:
            payload = self.state.checkpoint_state(rng_all, self.info.world_size)
            ckpt.save_checkpoint(self.run_dir, self.state.step, self.state.model, payload,
                                 keep_last=self.cfg.run.keep_last)
        barrier(self.info)
        self._last = time.perf_counter()  # samples_per_s counts training steps only


def gather_rng(rng: dict[str, Any], info: DistInfo) -> list[dict[str, Any]]:
    """Every rank's RNG states, collected on rank 0 (other ranks get only their own)."""
    if not info.distributed:
        return [rng]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, rng)
    return out


__all__ = ["Engine", "Hook", "Job", "gather_rng", "optimizer_step", "scalars"]
