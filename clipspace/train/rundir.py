"""The run directory of a training or fine-tuning job: choose it (never overwrite silently),
check a resumed run's config, write the config and side files, open the metrics log.

Layout: ``clipspace.checkpoint``. Everything that can fail on bad input is checked before
``begin`` removes an old directory under ``--overwrite``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from clipspace import checkpoint as ckpt
from clipspace import config as C
from clipspace.config import Config, ConfigError
from clipspace.errors import ClipspaceError
from clipspace.train.distributed import DistInfo, barrier, broadcast_object
from clipspace.train.logger import MetricsLogger

#: config sections that must match when resuming (the rest, e.g. optim.steps, may change)
RESUME_FIXED = ("geometry", "loss", "model")


class RunExistsError(ClipspaceError):
    """The run directory exists and neither resume nor overwrite was asked for."""


def run_name(cfg: Config, default_prefix: str = "") -> str:
    prefix = default_prefix or cfg.preset
    return cfg.run.name or f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def choose_run_dir(
    cfg: Config, resume: str | None, overwrite: bool, info: DistInfo
) -> tuple[Path, Path | None]:
    """(run directory, checkpoint to resume from or None). ``resume``: None, "latest" (the
    newest checkpoint of ``run.output_dir/run.name``, or a fresh start) or a checkpoint / run
    directory. An existing non-empty directory without resume or overwrite is an error."""
    if resume and resume != "latest":
        checkpoint = ckpt.resolve_checkpoint(resume)
        return ckpt.run_dir_of(checkpoint), checkpoint
    run_dir = Path(cfg.run.output_dir) / str(broadcast_object(run_name(cfg), info))
    if resume == "latest":
        return run_dir, ckpt.latest_checkpoint(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise RunExistsError(
            f"run directory {run_dir} already exists; pass --resume latest to continue it "
            "or --overwrite to replace it"
        )
    return run_dir, None


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


__all__ = ["RunExistsError", "begin", "check_resume_config", "choose_run_dir", "run_name"]
