"""``train(config)``: contrastive training of a ClipModel, as a job of the training engine.

Per optimizer step: one per-rank batch of ``data.batch_size / world_size`` samples, split into
``optim.accum_steps`` micro-batches (``accumulation.py``); the engine averages, clips and steps.
Data order is a pure function of (seed, epoch): a resumed run re-creates the epoch's permutation
and skips the batches already consumed, and restores every RNG state, so a run killed at any
step and resumed ends with the same weights bit for bit (CPU).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from clipspace import checkpoint as ckpt
from clipspace import config as C
from clipspace.config import Config, ConfigError
from clipspace.data.bad_images import end_epoch_report
from clipspace.data.build import build_dataset, build_loader, resolve_tokenizer, set_loader_epoch
from clipspace.errors import DataError
from clipspace.eval.evaluate import parse_suites
from clipspace.models import create_model
from clipspace.models.adapt import adaptation_summary
from clipspace.models.factory import with_base_model_section
from clipspace.train import fsdp
from clipspace.train.accumulation import accumulated_step, plain_step
from clipspace.train.distributed import (
    DistInfo,
    broadcast_parameters,
    cleanup,
    env_world_size,
    init_distributed,
)
from clipspace.train.engine import Engine, Hook, Job
from clipspace.train.hooks import (
    AnalysisHook,
    EvalHook,
    ValLossHook,
    analysis_pairs,
    with_analysis,
)
from clipspace.train.optim import WarmupCosine, build_optimizer
from clipspace.train.rundir import (
    RunPlan,
    begin,
    check_resume_config,
    choose_run_dir,
    load_resume,
)
from clipspace.train.state import TrainState, capture_rng, restore_rng, seed_everything

#: batch keys of a scene's parts, in ``ClipModel.forward``'s order (``data.mad_scenes``)
PART_KEYS = ("box_image", "box_text", "box_scene")


def pick_device(cfg: Config) -> torch.device:
    if cfg.run.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key 'run.device' is 'cuda' but no CUDA device is available")
    if cfg.run.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.run.device)


def autocast_factory(cfg: Config, device: torch.device) -> Callable[[], Any]:
    """bf16 autocast when precision is bf16 (auto: bf16 on CUDA, fp32 on CPU)."""
    precision = cfg.run.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "bf16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def check_batch(cfg: Config, world_size: int) -> int:
    """Per-rank batch size; the global batch must split evenly over ranks and micro-batches."""
    if cfg.data.batch_size % world_size:
        raise ConfigError(
            f"config key 'data.batch_size' ({cfg.data.batch_size}) must be divisible by the "
            f"number of processes ({world_size})"
        )
    per_rank = cfg.data.batch_size // world_size
    if per_rank % cfg.optim.accum_steps:
        raise ConfigError(
            f"config keys 'data.batch_size' / world size ({per_rank}) must be divisible by "
            f"'optim.accum_steps' ({cfg.optim.accum_steps})"
        )
    return per_rank


def epoch_batches(loader: Any, epoch: int, skip: int, seed: int) -> Iterator[dict[str, Any]]:
    """Batches of ``epoch`` from batch ``skip`` on: sampler/dataset set to the epoch, worker seeds
    a pure function of (seed, epoch); loaders without a resumable sampler skip by iterating."""
    try:
        set_loader_epoch(loader, epoch, skip)
        rest = 0
    except ValueError:
        set_loader_epoch(loader, epoch, 0)
        rest = skip
    gen = torch.Generator()
    gen.manual_seed((seed * 1_000_003 + epoch) % 2**63)
    loader.generator = gen
    it = iter(loader)
    return itertools.islice(it, rest, None) if rest else it


def build_model(cfg: Config, device: torch.device, info: DistInfo) -> nn.Module:
    """The model of ``cfg`` on ``device``, BatchNorm synchronised across GPUs, parameters
    broadcast from rank 0."""
    model = create_model(cfg).to(device)
    if info.world_size > 1 and any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        if device.type == "cpu":  # SyncBatchNorm has no CPU kernel: statistics stay per rank
            warnings.warn(
                f"model.image.norm=batch under {info.world_size} CPU processes: BatchNorm "
                "statistics are per rank (use norm=group for exact multi-process training)",
                stacklevel=2,
            )
        else:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    broadcast_parameters(model, info)
    return model


def validation_hooks(cfg: Config, model: nn.Module, tokenizer: Any, device: torch.device,
                     autocast: Callable[[], Any], loader_args: dict[str, Any],
                     info: DistInfo) -> list[Hook]:
    """``data.val``: the validation loss at every evaluation, and with ``run.eval_every`` the
    suites of ``run.eval_suites`` plus the modality gap (``EvalHook``)."""
    if not cfg.data.val:
        return []
    val_loader = build_loader(cfg.data.val, split="val", shuffle=False, drop_last=False,
                              **loader_args)
    hooks: list[Hook] = [ValLossHook(lambda: epoch_batches(val_loader, 0, 0, 0), device,
                                     autocast, info)]
    suites = parse_suites(cfg.run.eval_suites)
    if cfg.run.eval_every > 0 and suites:
        val = build_dataset(cfg.data.val, cfg.data, "val", image_size=loader_args["image_size"],
                            transform=loader_args["transform"])
        hooks.append(EvalHook(val, tokenizer, suites, device, cfg.run.eval_samples))
    return hooks


def analysis_hook(cfg: Config, tokenizer: Any, device: torch.device, image_size: int | None,
                  transform: Callable[[Any], Any] | None = None) -> AnalysisHook | None:
    """``run.analysis_every``: the ``AnalysisHook`` on ``run.analysis_samples`` pairs of the
    validation split (``data.val``), else of the training data (full captions, no
    ``data.caption_fraction``), read once before training without touching any RNG."""
    if cfg.run.analysis_every <= 0:
        return None
    spec, split = (cfg.data.val, "val") if cfg.data.val else (cfg.data.train, "train")
    rng = capture_rng()
    try:
        dataset = build_dataset(spec, cfg.data, split, image_size=image_size, seed=cfg.run.seed,
                                transform=transform)
        pairs = analysis_pairs(dataset, tokenizer, cfg.run.analysis_samples)
    finally:
        restore_rng(rng)
    return AnalysisHook(pairs, device, cfg.run.analysis_every, cfg.optim.steps)


def train(
    config: Config,
    resume: str | None = None,
    overwrite: bool = False,
    hooks: list[Hook] | None = None,
) -> Path:
    """Train ``config``; return the run directory.

    ``resume``: ``"latest"`` (newest checkpoint of ``run.output_dir/run.name``; starts fresh if
    there is none) or a checkpoint / run directory. ``hooks``: callables ``(model, step, run_dir)
    -> dict`` run every ``run.eval_every`` steps and at the end; their metrics are logged.
    Raises ConfigError / DataError (bad input, before any training) and RunExistsError.
    """
    C.validate(config)
    cfg = C.from_dict(C.to_dict(config))  # private copy
    if cfg.adapt.base:  # a pretrained model moved into cfg's geometry (models.adapt)
        if cfg.run.parallel == fsdp.FSDP:
            raise ConfigError("config keys 'adapt.base' and 'run.parallel' = 'fsdp': adapting a "
                              "pretrained model runs under ddp only")
        cfg = with_base_model_section(cfg)
    device = pick_device(cfg)
    check_batch(cfg, env_world_size())
    info = init_distributed(device, cfg.run.dist_timeout)
    try:
        return _train(cfg, device, info, resume, overwrite, list(hooks or []))
    finally:
        cleanup(info)


def _train(cfg: Config, device: torch.device, info: DistInfo, resume: str | None,
           overwrite: bool, hooks: list[Hook]) -> Path:
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    per_rank = check_batch(cfg, info.world_size)
    plan = choose_run_dir(cfg, resume, overwrite, info)
    try:
        return _train_in(plan, cfg, device, info, resume, per_rank, hooks)
    finally:
        if plan.lock is not None:
            plan.lock.release()


def _train_in(plan: RunPlan, cfg: Config, device: torch.device, info: DistInfo,
              resume: str | None, per_rank: int, hooks: list[Hook]) -> Path:
    run_dir = plan.run_dir
    if plan.checkpoint is not None:
        check_resume_config(cfg, run_dir)
    autocast = autocast_factory(cfg, device)
    # everything that can fail on bad input happens before the first step
    seed_everything(cfg.run.seed)
    model = build_model(cfg, device, info)
    if cfg.adapt.base and info.is_main:
        print(adaptation_summary(model), file=sys.stderr)
    # a pretrained model reads text with its own tokenizer and images with its preprocessing
    tokenizer = getattr(model, "tokenizer", None) or resolve_tokenizer(
        cfg.data, getattr(model, "context_length", None))
    loader_args = {
        "cfg": dataclasses.replace(cfg.data, batch_size=per_rank), "tokenizer": tokenizer,
        "rank": info.rank, "world_size": info.world_size, "seed": cfg.run.seed,
        # real images are resized to the tower's input unless data.image_size says otherwise
        "image_size": cfg.data.image_size or getattr(model, "image_size", None),
        "transform": getattr(model, "preprocess", None),
    }
    loader = build_loader(cfg.data.train, split="train", shuffle=True, **loader_args)
    hooks = validation_hooks(cfg, model, tokenizer, device, autocast, loader_args, info) + hooks
    if cfg.run.eval_every > 0 and not hooks:
        raise ConfigError("config key 'run.eval_every' needs 'data.val' (--val-data) to evaluate")
    analysis = analysis_hook(cfg, tokenizer, device, loader_args["image_size"],
                             loader_args["transform"])
    hooks += [analysis] if analysis is not None else []
    if getattr(loader.batch_sampler, "batches_per_epoch", None) == 0:
        raise DataError(
            f"data.train = {cfg.data.train!r} has fewer than {per_rank} samples per process: "
            "lower data.batch_size or use more data"
        )
    sharded = cfg.run.parallel == fsdp.FSDP
    if sharded:  # in place, before the optimizer sees the parameters
        fsdp.shard_model(model, cfg, device, info)
        hooks = fsdp.gather_for_hooks(hooks) if fsdp.is_sharded(model) else hooks
    optimizer = build_optimizer(model, cfg.optim)
    state = TrainState(model, optimizer, WarmupCosine(optimizer, cfg.optim))
    if sharded or (plan.checkpoint is not None and fsdp.is_sharded_checkpoint(plan.checkpoint)):
        plan.checkpoint, rng = fsdp.load_resume(plan.checkpoint, run_dir, resume, state, info)
    else:
        rng = load_resume(plan, resume, state, info.rank)
    logger = begin(run_dir, cfg, info, wipe=plan.wipe, step=state.step,
                   write_side_files=lambda d: tokenizer.save(d / ckpt.TOKENIZER_NAME))
    if rng is not None:
        restore_rng(rng)
    model.train()
    engine = Engine(state, cfg, info, run_dir, logger, hooks,
                    checkpointer=fsdp.ShardedCheckpointer(run_dir, cfg, info) if sharded else None)
    job = contrastive_job(cfg, model, loader, device, autocast, per_rank, run_dir, info)
    if analysis is not None:  # dyn/... at step 0 and every run.analysis_every steps
        job = with_analysis(job, analysis, state, logger, run_dir)
    engine.run(job)
    return run_dir


def contrastive_job(cfg: Config, model: nn.Module, loader: Any, device: torch.device,
                    autocast: Callable[[], Any], per_rank: int, run_dir: Path,
                    info: DistInfo | None = None) -> Job:
    """Batches from ``loader``; the step is the model's loss over the batch, gradient-cached
    over ``optim.accum_steps`` micro-batches (compiled with ``run.compile`` when k = 1).

    Several processes, k = 1: the model runs inside ``DistributedDataParallel`` (bucketed
    all-reduce overlapped with the backward pass). The gradient-cached path (k > 1) keeps the
    engine's one flat all-reduce after the step: its backward passes run through
    ``encode_image`` / ``encode_text`` and the cached loss, never through the module's
    ``forward``, which is the only place DDP prepares its reducer (docs/training.md).
    A model sharded by FSDP (``train.fsdp``) reduce-scatters its own gradients (its 0-dim
    parameters, left whole, are averaged after the backward: ``fsdp.reduce_replicated``)."""
    k = cfg.optim.accum_steps
    # only a compositional objective reads a scene batch's boxes; other objectives train on the
    # wholes (gradient-cached as usual)
    composes = cfg.loss.compositional
    sharded = fsdp.is_sharded(model)
    ddp = info is not None and info.distributed and k == 1 and not sharded
    step_model: nn.Module = model
    if ddp:
        step_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            # buffers were broadcast once by build_model; BatchNorm statistics then follow
            # SyncBatchNorm on GPU and stay per rank on CPU, as on the manual path
            forward_sync_buffers=False, gradient_as_bucket_view=True)
    if cfg.run.compile and k == 1:
        step_model = torch.compile(step_model)

    def step(batch: dict[str, Any]) -> dict[str, Any]:
        images = batch["image"].to(device, non_blocking=True)
        tokens = batch["text"].to(device, non_blocking=True)
        if composes and PART_KEYS[0] in batch:  # scenes; accum_steps = 1 (config validation)
            parts = tuple(batch[key].to(device, non_blocking=True) for key in PART_KEYS)
            out = plain_step(step_model, images, tokens, autocast, parts)
        else:
            out = accumulated_step(step_model, images, tokens, k, autocast)
        if sharded:
            fsdp.reduce_replicated(model, info)
        return out

    return Job(
        name=f"train {run_dir.name}",
        batches=lambda epoch, skip: epoch_batches(loader, epoch, skip, cfg.run.seed),
        step=step,
        samples_per_step=cfg.data.batch_size,
        empty_error=(f"data.train = {cfg.data.train!r} yields no batch of {per_rank} samples "
                     "per rank: lower data.batch_size or use more data"),
        # corrupt/missing images skipped this epoch: printed, and an error over the limit
        end_epoch=lambda: end_epoch_report(loader.dataset),
        reduces_gradients=ddp or sharded,
    )


__all__ = ["analysis_hook", "autocast_factory", "check_batch", "epoch_batches", "pick_device",
           "train"]
