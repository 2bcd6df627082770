"""The run directory of a training or fine-tuning job: choose it (never overwrite silently),
check a resumed run's config, write the config and side files, open the metrics log.

Layout: ``clipspace.checkpoint``. Everything that can fail on bad input is checked before
``begin`` removes an old directory under ``--overwrite``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipspace import checkpoint as ckpt
from clipspace import config as C
from clipspace.config import Config, ConfigError
from clipspace.errors import ClipspaceError
from clipspace.train.distributed import DistInfo, barrier, broadcast_object
from clipspace.train.logger import MetricsLogger
from clipspace.train.state import TrainState

#: config sections that must match when resuming (the rest, e.g. optim.steps, may change)
RESUME_FIXED = ("geometry", "loss", "model")


class RunExistsError(ClipspaceError):
    """The run directory exists and neither resume nor overwrite was asked for."""


def run_name(cfg: Config, default_prefix: str = "") -> str:
    prefix = default_prefix or cfg.preset
    return cfg.run.name or f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_output_dir(cfg: Config) -> None:
    """``run.output_dir`` must be a directory we can write (or creatable): checked before any
    model or data is built."""
    out = Path(cfg.run.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"config key 'run.output_dir': {out} is a file, not a directory")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"config key 'run.output_dir': cannot write into {probe}")


class RunLock:
    """An exclusive lock on a run directory, held while a job writes into it: ``flock`` on the
    sibling file ``.<name>.lock``, released by the kernel when the process dies (a killed run
    leaves no stale lock). A second writer gets a RunExistsError naming the holder's pid."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir.parent / f".{run_dir.name}.lock"
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise RunExistsError(
                f"run directory {self.path.parent / self.path.name[1:-5]} is in use by another "
                f"clipspace process (pid {holder}; lock {self.path})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


@dataclass
class RunPlan:
    """Where a job writes, what it resumes from, and whether the old directory goes first."""

    run_dir: Path
    checkpoint: Path | None
    wipe: bool
    lock: RunLock | None


def choose_run_dir(cfg: Config, resume: str | None, overwrite: bool, info: DistInfo) -> RunPlan:
    """Lock and plan the run directory. ``resume``: None, "latest" (the newest checkpoint of
    ``run.output_dir/run.name``, or a fresh start) or a checkpoint / run directory. A directory
    that holds a checkpoint is never replaced without ``overwrite``; one without any (a run that
    failed before its first checkpoint) is started again."""
    check_output_dir(cfg)
    if resume and resume != "latest":
        checkpoint = ckpt.resolve_checkpoint(resume)
        run_dir = ckpt.run_dir_of(checkpoint)
    else:
        run_dir = Path(cfg.run.output_dir) / str(broadcast_object(run_name(cfg), info))
    lock = RunLock(run_dir).acquire() if info.is_main else None
    try:
        return _plan(run_dir, resume, overwrite, lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _plan(run_dir: Path, resume: str | None, overwrite: bool, lock: RunLock | None) -> RunPlan:
    if lock is not None:
        ckpt.clean_leftovers(run_dir)  # a killed writer's partial / half-deleted checkpoints
    if resume and resume != "latest":
        return RunPlan(run_dir, ckpt.resolve_checkpoint(resume), False, lock)
    latest = ckpt.latest_checkpoint(run_dir)
    restart = run_dir.exists() and latest is None and only_run_files(run_dir)
    if resume == "latest":
        if latest is None and run_dir.exists() and not restart and any(run_dir.iterdir()):
            raise RunExistsError(f"{run_dir} holds files that are not a clipspace run's")
        return RunPlan(run_dir, latest, restart, lock)
    if run_dir.exists() and any(run_dir.iterdir()) and not (overwrite or restart):
        raise RunExistsError(
            f"run directory {run_dir} already exists; pass --resume latest to continue it "
            "or --overwrite to replace it"
        )
    return RunPlan(run_dir, None, run_dir.exists() and (overwrite or restart), lock)


#: what a run writes before its first checkpoint (a failed start may leave only these)
RUN_FILES = ("config.json", "tokenizer.json", "metrics.jsonl", "finetune.json", "tensorboard",
             "hf_base", "checkpoints")


def only_run_files(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds nothing but what a run writes before its first checkpoint."""
    return all(p.name in RUN_FILES for p in run_dir.iterdir())


def load_resume(plan: RunPlan, resume: str | None, state: TrainState, rank: int = 0
                ) -> dict[str, Any] | None:
    """Restore ``state`` (weights, optimizer, schedule, position) from the plan's checkpoint;
    with ``--resume latest`` a corrupt newest checkpoint is skipped with a warning for the newest
    one that loads. Returns this rank's RNG state (None for a fresh start)."""
    if plan.checkpoint is None:
        return None
    if resume == "latest":
        found = ckpt.load_newest_good(plan.run_dir, state.model)
        if found is None:
            return None
        plan.checkpoint, saved = found
    else:
        saved = ckpt.load_checkpoint(plan.checkpoint, state.model)
    return state.restore(saved, rank)


def check_resume_config(cfg: Config, run_dir: Path) -> None:
    """A resumed run must keep the saved model, geometry and loss settings."""
    saved_path = run_dir / ckpt.CONFIG_NAME
    if not saved_path.exists():
        return
    saved = C.flatten(C.to_dict(C.load(saved_path)))
    now = C.flatten(C.to_dict(cfg))
    bad = [k for k in now if k.split(".")[0] in RESUME_FIXED and saved.get(k) != now[k]
           and k != "model.pretrained"]
    if bad:
        raise ConfigError(
            f"cannot resume {run_dir}: config keys differ from its config.json: "
            + ", ".join(f"{k} ({saved.get(k)!r} -> {now[k]!r})" for k in bad[:8])
        )


def begin(
    run_dir: Path,
    cfg: Config,
    info: DistInfo,
    wipe: bool,
    step: int,
    write_side_files: Callable[[Path], None],
) -> MetricsLogger:
    """Start writing into ``run_dir`` once every input has been checked: remove the old
    directory (``wipe``: --overwrite of a fresh run), save ``config.json`` and the side files
    (tokenizer, ...), open the metrics log without records after ``step`` (resume)."""
    barrier(info)
    if wipe and info.is_main and run_dir.exists():
        shutil.rmtree(run_dir)
    barrier(info)
    logger = MetricsLogger(run_dir, enabled=info.is_main, tensorboard=cfg.run.tensorboard)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        C.save(cfg, run_dir / ckpt.CONFIG_NAME)
        write_side_files(run_dir)
        logger.truncate_after(step)
    barrier(info)
    return logger


__all__ = ["RunExistsError", "RunLock", "RunPlan", "begin", "check_output_dir",
           "check_resume_config", "choose_run_dir", "load_resume", "run_name"]
