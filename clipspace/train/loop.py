"""``train(config)``: the steps-based training loop.

Per optimizer step: one per-rank batch of ``data.batch_size / world_size`` samples, split into
``optim.accum_steps`` micro-batches (``accumulation.py``), gradients averaged over ranks, clipped,
AdamW step with the warmup-cosine lr. Data order is a pure function of (seed, epoch): a resumed
run re-creates the epoch's permutation and skips the batches already consumed, and restores every
RNG state, so a run killed at any step and resumed ends with the same weights bit for bit (CPU).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clipspace import config as C
from clipspace.config import Config, ConfigError
from clipspace.data.bad_images import end_epoch_report
from clipspace.errors import ClipspaceError, DataError
from clipspace.train import checkpoint as ckpt
from clipspace.train.accumulation import accumulated_step
from clipspace.train.distributed import (
    DistInfo,
    average_gradients,
    barrier,
    broadcast_object,
    broadcast_parameters,
    cleanup,
    env_world_size,
    init_distributed,
    mean_scalars,
)
from clipspace.train.logger import MetricsLogger
from clipspace.train.optim import WarmupCosine, build_optimizer, clip_gradients

Hook = Callable[[nn.Module, int, Path], dict[str, float]]
# config sections that must match when resuming (the rest, e.g. optim.steps, may change)
RESUME_FIXED = ("geometry", "loss", "model")


class RunExistsError(ClipspaceError):
    """The run directory exists and neither resume nor overwrite was asked for."""


# ---- setup helpers ------------------------------------------------------------------------------


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


def run_name(cfg: Config) -> str:
    return cfg.run.name or f"{cfg.preset}-{time.strftime('%Y%m%d-%H%M%S')}"


def tokenizer_source(cfg: Config) -> str:
    """``data.tokenizer`` or, for ``mad:DIR``, the tokenizer.json inside DIR."""
    if cfg.data.tokenizer:
        return cfg.data.tokenizer
    scheme, _, rest = cfg.data.train.partition(":")
    if scheme == "mad" and rest:
        return rest
    raise ConfigError(
        f"config key 'data.tokenizer' is empty and data.train = {cfg.data.train!r} has no "
        "tokenizer of its own; set data.tokenizer to a tokenizer.json"
    )


def check_resume_config(cfg: Config, run_dir: Path) -> None:
    """A resumed run must keep the saved model, geometry and loss settings."""
    saved_path = run_dir / "config.json"
    if not saved_path.exists():
        return
    from clipspace.models.configs import apply_named

    saved_cfg = C.load(saved_path)
    saved_cfg.model = apply_named(saved_cfg.model)  # runs saved before expansion compare equal
    expanded = dataclasses.replace(cfg, model=apply_named(cfg.model))
    saved = C.flatten(C.to_dict(saved_cfg))
    now = C.flatten(C.to_dict(expanded))
    bad = [k for k in now if k.split(".")[0] in RESUME_FIXED and saved.get(k) != now[k]]
    if bad:
        raise ConfigError(
            f"cannot resume {run_dir}: config keys differ from its config.json: "
            + ", ".join(f"{k} ({saved.get(k)!r} -> {now[k]!r})" for k in bad[:8])
        )


def prepare_run_dir(
    cfg: Config, resume: str | None, overwrite: bool, info: DistInfo
) -> tuple[Path, Path | None]:
    """(run directory, checkpoint to resume from or None). Never overwrites silently."""
    if resume and resume != "latest":
        checkpoint = ckpt.resolve_checkpoint(resume, Path(resume))
        return ckpt.run_dir_of(checkpoint), checkpoint
    name = broadcast_object(run_name(cfg), info)
    run_dir = Path(cfg.run.output_dir) / str(name)
    if resume == "latest":
        return run_dir, ckpt.latest_checkpoint(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise RunExistsError(
                f"run directory {run_dir} already exists; pass --resume latest to continue it "
                "or --overwrite to replace it"
            )
        return run_dir, None  # replaced by wipe_run_dir once every input has been checked
    return run_dir, None


def wipe_run_dir(run_dir: Path, info: DistInfo) -> None:
    """--overwrite: remove the old run directory (rank 0), after all inputs were validated."""
    barrier(info)
    if info.is_main and run_dir.exists():
        shutil.rmtree(run_dir)
    barrier(info)


# ---- data ---------------------------------------------------------------------------------------


def epoch_batches(loader: Any, epoch: int, skip: int, seed: int) -> Iterator[dict[str, Any]]:
    """Batches of ``epoch`` from batch ``skip`` on: sampler/dataset set to the epoch, worker seeds
    a pure function of (seed, epoch); loaders without a resumable sampler skip by iterating."""
    from clipspace.data.build import set_loader_epoch

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


# ---- hooks --------------------------------------------------------------------------------------


class ValLossHook:
    """Mean validation loss (and each loss term) over a loader: ``{"val/loss": ..., ...}``."""

    def __init__(self, loader: Any, device: torch.device, autocast: Callable[[], Any],
                 max_batches: int = 0) -> None:
        self.loader, self.device, self.autocast = loader, device, autocast
        self.max_batches = max_batches

    @torch.no_grad()
    def __call__(self, model: nn.Module, step: int, run_dir: Path) -> dict[str, float]:
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        n = 0
        for i, batch in enumerate(epoch_batches(self.loader, 0, 0, 0)):
            if self.max_batches and i >= self.max_batches:
                break
            with self.autocast():
                out = model(batch["image"].to(self.device), batch["text"].to(self.device))
            for key, value in out.items():
                if key == "loss" or key.startswith("loss/"):
                    sums[key] = sums.get(key, 0.0) + float(value)
            n += 1
        model.train(was_training)
        return {f"val/{k}": v / n for k, v in sums.items()} if n else {}


# ---- the loop -----------------------------------------------------------------------------------


def _scalars(out: dict[str, Any]) -> dict[str, float]:
    res = {}
    for key, value in out.items():
        if torch.is_tensor(value) and value.numel() == 1:
            res[key] = float(value)
        elif isinstance(value, (int, float)):
            res[key] = float(value)
    return res


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
    device = pick_device(cfg)
    check_batch(cfg, env_world_size())
    info = init_distributed(device)
    try:
        return _train(cfg, device, info, resume, overwrite, list(hooks or []))
    finally:
        cleanup(info)


def _train(
    cfg: Config,
    device: torch.device,
    info: DistInfo,
    resume: str | None,
    overwrite: bool,
    hooks: list[Hook],
) -> Path:
    from clipspace.data.build import build_loader
    from clipspace.data.tokenizer import get_tokenizer
    from clipspace.models import create_model

    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    per_rank = check_batch(cfg, info.world_size)
    run_dir, checkpoint = prepare_run_dir(cfg, resume, overwrite, info)
    if checkpoint is not None:
        check_resume_config(cfg, run_dir)
    autocast = autocast_factory(cfg, device)

    # everything that can fail on bad input happens before the first step
    ckpt.seed_everything(cfg.run.seed)
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
    tokenizer = get_tokenizer(
        tokenizer_source(cfg), context_length=getattr(model, "context_length", None)
    )
    data_cfg = dataclasses.replace(cfg.data, batch_size=per_rank)
    # real images are resized to the tower's input unless data.image_size says otherwise
    image_size = cfg.data.image_size or getattr(model, "image_size", None)
    loader = build_loader(
        cfg.data.train, data_cfg, tokenizer, "train", rank=info.rank,
        world_size=info.world_size, shuffle=True, seed=cfg.run.seed, image_size=image_size,
    )
    if cfg.data.val:
        val_loader = build_loader(
            cfg.data.val, data_cfg, tokenizer, "val", rank=info.rank,
            world_size=info.world_size, shuffle=False, seed=cfg.run.seed, drop_last=False,
            image_size=image_size,
        )
        hooks.insert(0, ValLossHook(val_loader, device, autocast))
    batches = getattr(loader.batch_sampler, "batches_per_epoch", None)
    if batches == 0:
        raise DataError(
            f"data.train = {cfg.data.train!r} has fewer than {per_rank} samples per process: "
            "lower data.batch_size or use more data"
        )
    optimizer = build_optimizer(model, cfg.optim)
    schedule = WarmupCosine(optimizer, cfg.optim)
    params = [p for p in model.parameters() if p.requires_grad]
    step_model: nn.Module = torch.compile(model) if cfg.run.compile else model

    step, epoch, consumed = 0, 0, 0
    rng_state = None
    if checkpoint is not None:
        state = ckpt.load_checkpoint(checkpoint, model)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        step, epoch, consumed = int(state["step"]), int(state["epoch"]), int(state["consumed"])
        all_rng = state.get("rng_all") or [state["rng"]]
        rng_state = all_rng[info.rank] if info.rank < len(all_rng) else state["rng"]

    if overwrite and checkpoint is None:
        wipe_run_dir(run_dir, info)
    logger = MetricsLogger(run_dir, enabled=info.is_main, tensorboard=cfg.run.tensorboard)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        # the resolved config with the named model expanded: what the weights really are
        C.save(getattr(model, "config", cfg), run_dir / "config.json")
        tokenizer.save(run_dir / "tokenizer.json")
        logger.truncate_after(step)
    barrier(info)
    if rng_state is not None:
        ckpt.restore_rng(rng_state)

    def save(at: int) -> None:
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": schedule.state_dict(),
            "epoch": epoch,
            "consumed": consumed,
            "world_size": info.world_size,
        }
        logger.flush()
        rng = ckpt.capture_rng()
        all_rng = broadcast_rng(rng, info)
        if info.is_main:
            state["rng_all"] = all_rng
            ckpt.save_checkpoint(run_dir, at, model, state, keep_last=cfg.run.keep_last)
        barrier(info)

    def run_hooks(at: int) -> None:
        for hook in hooks:
            metrics = hook(model, at, run_dir) or {}
            logger.log(at, metrics)
        logger.flush()

    total = cfg.optim.steps
    bar = None
    if cfg.run.progress and info.is_main and step < total:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=step, desc=f"train {run_dir.name}", unit="step")
    model.train()
    last = time.perf_counter()
    while step < total:
        got_batch = consumed > 0  # a resumed epoch may have no batch left
        for batch in epoch_batches(loader, epoch, consumed, cfg.run.seed):
            got_batch = True
            images = batch["image"].to(device, non_blocking=True)
            tokens = batch["text"].to(device, non_blocking=True)
            k = cfg.optim.accum_steps
            if k > 1:
                out = accumulated_step(model, images, tokens, k, autocast)
            else:
                out = accumulated_step(step_model, images, tokens, 1, autocast)
            average_gradients(params, info)
            grad_norm = clip_gradients(params, cfg.optim.grad_clip)
            lr = schedule.apply()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            schedule.step()
            step += 1
            consumed += 1
            metrics = mean_scalars(_scalars(out), info)
            if not math.isfinite(metrics.get("loss", 0.0)):
                raise FloatingPointError(f"non-finite loss {metrics.get('loss')} at step {step}")
            now = time.perf_counter()
            elapsed, last = now - last, now
            metrics.update(
                lr=lr, grad_norm=grad_norm, epoch=epoch,
                samples_per_s=cfg.data.batch_size / max(elapsed, 1e-9),
            )
            logger.log(step, metrics)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}",
                                sps=f"{metrics['samples_per_s']:.0f}")
            if cfg.run.log_every > 0 and step % cfg.run.log_every == 0:
                logger.flush()
            if cfg.run.eval_every > 0 and step % cfg.run.eval_every == 0 and step < total:
                run_hooks(step)
            if step >= total:
                break
            if cfg.run.save_every > 0 and step % cfg.run.save_every == 0:
                save(step)
        else:
            if not got_batch:
                raise DataError(
                    f"data.train = {cfg.data.train!r} yields no batch of {per_rank} samples per "
                    "rank: lower data.batch_size or use more data"
                )
            # corrupt/missing images skipped this epoch: printed, and an error over the limit
            end_epoch_report(loader.dataset)
            epoch += 1
            consumed = 0
            continue
        break
    if bar is not None:
        bar.close()
    end_epoch_report(loader.dataset)  # the last (partial) epoch too
    if hooks:
        run_hooks(step)
    save(step)
    logger.close()
    return run_dir


def broadcast_rng(rng: dict[str, Any], info: DistInfo) -> list[dict[str, Any]] | None:
    """Every rank's RNG states, collected on rank 0 (None elsewhere)."""
    if not info.distributed:
        return [rng]
    import torch.distributed as dist

    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, rng)
    return out if info.is_main else None
