"""FSDP2 (``run.parallel=fsdp``): sharded model, sharded checkpoints, consolidated export.

Sharding (``shard_model``): under several processes every transformer block of both towers
(the children of each ``nn.ModuleList`` named ``blocks``) is one ``fully_shard`` unit; a tower
without blocks (the ConvNet) is one unit as a whole; then the root ``ClipModel`` (projections,
embeddings, norms: everything else but the 0-dim scalars). Parameters, gradients and AdamW's
moments are split over the ranks (``DTensor`` shards); each unit is all-gathered for its
forward and backward and its gradients are reduce-scattered (averaged) during the backward
pass, so the engine skips its own all-reduce (``Job.reduces_gradients``). Mixed precision follows
``run.precision``: bf16 computes with bf16 parameters and reduces gradients in float32
(``MixedPrecisionPolicy(param_dtype=bfloat16, reduce_dtype=float32)``); fp32 none. The 0-dim
parameters (curvature, logit scale, alphas: ``fully_shard`` refuses scalars) stay whole on
every rank and are averaged by one small all-reduce after the backward
(``reduce_replicated``). The gradient-cached path (``optim.accum_steps > 1``) calls the root's
``encode_image`` / ``encode_text`` instead of ``forward``; they are registered as FSDP forward
methods, so each call gathers the root's shards and each of its k + 1 backward passes
reduce-scatters into the sharded gradients (their sum is the gradient of the whole batch; the
loss over the cached points touches only the whole scalars). Evaluation and analysis hooks run
on the gathered model (``unsharded``).

Checkpoints (``ShardedCheckpointer``): ``<run>/checkpoints/step_<N>/`` holds

* ``sharded/`` - a ``torch.distributed.checkpoint`` (DCP) directory: model and optimizer state
  dicts of ``get_state_dict`` (every rank writes its shards, rank 0 the ``.metadata``);
* ``state.pt`` - written by rank 0, the bookkeeping of the one format (``TrainState.
  checkpoint_state`` without the optimizer: schedule, step, epoch, consumed batches, world size,
  every rank's RNG) plus ``parallel: "fsdp"`` and the model's ``weights_metadata``;
* ``model.safetensors`` - only in the last checkpoint of a run: the full weights gathered on
  rank 0, the one normal format that ``load_model_and_tokenizer`` / ``clipspace eval`` read.

Resuming (``load_resume``) reads ``sharded/`` with ``dcp.load`` into the state dicts of the model
as it is now and applies them with ``set_state_dict``: DCP reshards, so a checkpoint of N ranks
resumes on M ranks, and on one process into the plain, unsharded model (DCP loads into ordinary
tensors). The same code runs when ``run.parallel=fsdp`` is given to a single process: the model
stays unsharded but its checkpoints are written in this layout, so such a run resumes on several
ranks too. ``export_weights`` turns a sharded checkpoint into one ``model.safetensors`` offline.
The run directory must be on a filesystem that every rank sees (each rank writes its shards).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import (
    FSDPModule,
    MixedPrecisionPolicy,
    fully_shard,
    register_fsdp_forward_method,
)
from torch.distributed.tensor import DTensor

from clipspace import checkpoint as ckpt
from clipspace import config as C
from clipspace.config import Config, ConfigError
from clipspace.errors import ClipspaceError
from clipspace.io import atomic_dir, atomic_save
from clipspace.models import create_model, transformer_blocks
from clipspace.train.distributed import DistInfo, average_gradients, barrier, broadcast_object
from clipspace.train.engine import Hook
from clipspace.train.hooks import AnalysisHook
from clipspace.train.state import TrainState

#: the value of ``run.parallel`` that selects this module
FSDP = "fsdp"
#: the DCP directory inside a sharded ``step_<N>``
SHARDED_DIR = ckpt.SHARDED_NAME
#: methods a tower calls on a block instead of ``forward`` (the pooled last block of
#: ``models.vit.Transformer``), registered so that FSDP gathers the block's shards for them too
UNIT_METHODS = ("forward_one",)
#: the root's methods the gradient-cached path (``optim.accum_steps > 1``) calls instead of
#: ``forward``; registered only then (``forward`` itself calls them, and a training forward
#: would then enter the root's FSDP hooks twice)
CACHED_PATH_METHODS = ("encode_image", "encode_text")


def resolved_precision(cfg: Config, device: torch.device) -> str:
    """``run.precision`` with ``auto`` resolved as training does (bf16 on CUDA, else fp32)."""
    if cfg.run.precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return cfg.run.precision


def mixed_precision(cfg: Config, device: torch.device) -> MixedPrecisionPolicy:
    """bf16: bf16 parameters for compute, float32 gradient reduction; fp32: no casting."""
    if resolved_precision(cfg, device) == "bf16":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules that become their own FSDP unit, innermost first (the root comes last, not
    listed): every child of a ``ModuleList`` named ``blocks`` in the image and text towers; a
    tower without such blocks as a whole."""
    units: list[nn.Module] = []
    for tower_name in ("visual", "text"):
        tower = getattr(model, tower_name, None)
        if not isinstance(tower, nn.Module):
            continue
        units.extend(transformer_blocks(tower) or [tower])
    return units


def shard_model(model: nn.Module, cfg: Config, device: torch.device, info: DistInfo
                ) -> nn.Module:
    """Apply ``fully_shard`` (in place) to the units of ``shard_units`` and then to the root
    (its 0-dim parameters left whole: ``replicated_params``), with the mixed precision of
    ``run.precision``; a single process keeps the plain model.
    Call it after the parameters were broadcast and before the optimizer is built."""
    if not info.distributed:
        return model
    mesh = init_device_mesh(device.type, (info.world_size,))
    policy = mixed_precision(cfg, device)
    for unit in shard_units(model):
        fully_shard(unit, mesh=mesh, mp_policy=policy)
        for method in UNIT_METHODS:
            if callable(getattr(unit, method, None)):
                register_fsdp_forward_method(unit, method)
    fully_shard(model, mesh=mesh, mp_policy=policy,
                ignored_params={p for p in model.parameters() if p.ndim == 0})
    # FSDP decides which module is the root at the first forward; an analysis hook at step 0
    # calls the blocks before any root forward, which would make each block its own root
    model._get_fsdp_state()._lazy_init()  # type: ignore[operator]  # torch 2.13, private
    if cfg.optim.accum_steps > 1:  # the gradient-cached path calls these, never forward
        for method in CACHED_PATH_METHODS:
            register_fsdp_forward_method(model, method)
    return model


def replicated_params(model: nn.Module) -> list[nn.Parameter]:
    """The parameters FSDP leaves whole on every rank: the 0-dim scalars (curvature, logit
    scale, alphas, SigLIP bias; ``fully_shard`` refuses scalar parameters), which the training
    step averages itself (``reduce_replicated``)."""
    return [p for p in model.parameters() if p.requires_grad and not isinstance(p, DTensor)]


def reduce_replicated(model: nn.Module, info: DistInfo) -> None:
    """Average the gradients of ``replicated_params`` over ranks (one small all-reduce; FSDP
    reduce-scatters all the others during the backward pass)."""
    if is_sharded(model):
        average_gradients(replicated_params(model), info)


def is_sharded(model: nn.Module) -> bool:
    """Whether ``model`` runs under FSDP (its parameters are DTensor shards)."""
    return isinstance(model, FSDPModule) or any(isinstance(p, DTensor) for p in model.parameters())


@contextlib.contextmanager
def unsharded(model: nn.Module) -> Iterator[None]:
    """Every FSDP unit of ``model`` all-gathered for the block (a collective: every rank must
    enter it, as every rank runs the hooks), so code that calls ``encode_image`` /
    ``encode_text`` / ``logits`` outside ``forward`` (evaluation and analysis hooks) sees whole
    parameters; resharded on exit. A plain model: nothing happens."""
    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for unit in units:
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()


def gathered(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn(model, ...)`` run inside ``unsharded(model)``."""

    @functools.wraps(fn)
    def run(model: nn.Module, *args: Any) -> Any:
        with unsharded(model):
            return fn(model, *args)

    return run


def gather_for_hooks(hooks: list[Hook]) -> list[Hook]:
    """The hooks of an FSDP run, each run on the gathered model (``unsharded``); an
    ``AnalysisHook`` keeps its identity (``with_analysis`` also calls it before steps) and has
    its ``measure`` wrapped instead."""
    out: list[Hook] = []
    for hook in hooks:
        if isinstance(hook, AnalysisHook):
            hook.measure = gathered(hook.measure)  # type: ignore[method-assign]
            out.append(hook)
        else:
            out.append(gathered(hook))
    return out


def is_sharded_checkpoint(path: str | Path) -> bool:
    """Whether checkpoint directory ``path`` holds a DCP ``sharded/`` directory."""
    return ckpt.has_sharded(Path(path))


# ---- weights ---------------------------------------------------------------------------------


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full (unsharded) model state dict on rank 0's CPU; a collective under FSDP (every
    rank must call it); other ranks get an empty dict. A plain model: its own state dict."""
    if not is_sharded(model):
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def _pooling_ids(meta: dict[str, str]) -> dict[str, Any]:
    """``create_model`` keyword arguments for the text pooling ids stored in weights metadata."""
    out: dict[str, Any] = {}
    if "eot_id" in meta:
        out["eot_id"] = int(meta["eot_id"]) if meta["eot_id"] else None
    if "pad_id" in meta:
        out["pad_id"] = int(meta["pad_id"])
    return out


def plain_model(cfg: Config, meta: dict[str, str]) -> nn.Module:
    """A fresh unsharded model of ``cfg`` on the CPU with the pooling ids of ``meta``, built
    without touching the caller's RNG streams (its random init is overwritten anyway)."""
    with torch.random.fork_rng(devices=[]):
        return create_model(cfg, **_pooling_ids(meta))


def write_full_weights(tensors: dict[str, torch.Tensor], cfg: Config, meta: dict[str, str],
                       path: Path) -> Path:
    """Write the full state dict ``tensors`` as the one normal weights file (``ckpt.
    write_weights`` of an unsharded model holding them, so names and metadata are those of a
    non-FSDP run)."""
    model = plain_model(cfg, meta)
    model.load_state_dict(tensors, strict=True, assign=True)
    return ckpt.write_weights(model, path)


# ---- checkpoints -----------------------------------------------------------------------------


@contextlib.contextmanager
def _dcp_quiet() -> Iterator[None]:
    """DCP without a process group (one process) warns that it assumes one process: that is
    the intent here (resuming on, or exporting from, a single process)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled",
                                category=UserWarning)
        yield


def _metadata(model: nn.Module) -> dict[str, str]:
    meta_fn = getattr(model, "weights_metadata", None)
    return {str(k): str(v) for k, v in (meta_fn() if callable(meta_fn) else {}).items()}


@dataclass
class ShardedCheckpointer:
    """Writes the checkpoints of an FSDP run (layout: module docstring); called on every rank
    by ``Engine.save``."""

    run_dir: Path
    cfg: Config
    info: DistInfo

    def __call__(self, state: TrainState, rng_all: list[dict[str, Any]], final: bool) -> Path:
        """Write ``step_<state.step>`` (every rank its shards; rank 0 the metadata, and at the
        end of the run the full ``model.safetensors``), built under a temporary name and renamed
        into place by rank 0; then keep the newest ``run.keep_last``."""
        info = self.info
        target = ckpt.step_dir(self.run_dir, state.step)
        model_sd, optim_sd = get_state_dict(state.model, state.optimizer)
        full = full_state_dict(state.model) if final else {}
        building = atomic_dir(target, overwrite=True) if info.is_main else contextlib.nullcontext()
        with building as tmp_main:
            tmp = Path(str(broadcast_object(str(tmp_main), info)))
            with _dcp_quiet():
                dcp.save({"model": model_sd, "optim": optim_sd},
                         checkpoint_id=tmp / SHARDED_DIR)
            if info.is_main:
                meta = _metadata(state.model)
                payload = {**state.checkpoint_state(rng_all, info.world_size,
                                                    with_optimizer=False),
                           "step": state.step, "parallel": FSDP, "weights_metadata": meta}
                atomic_save(tmp / ckpt.STATE_NAME, lambda p: torch.save(payload, p))
                if final:
                    write_full_weights(full, self.cfg, meta, tmp / ckpt.WEIGHTS_NAME)
            barrier(info)  # every rank's shards are in tmp before rank 0 renames it
        if info.is_main and self.cfg.run.keep_last > 0:
            ckpt.prune_checkpoints(self.run_dir, self.cfg.run.keep_last)
        return target


def load_sharded(path: Path, state: TrainState, rank: int) -> dict[str, Any] | None:
    """Load checkpoint ``path`` (sharded layout) into ``state``: model and optimizer through
    DCP (resharded to the current world size, or into the plain model on one process), then
    schedule, position and this rank's RNG state (returned; restore it just before the first
    step)."""
    saved = ckpt.read_state(path / ckpt.STATE_NAME)
    model_sd, optim_sd = get_state_dict(state.model, state.optimizer)
    target = {"model": model_sd, "optim": optim_sd}
    try:
        with _dcp_quiet():
            dcp.load(target, checkpoint_id=path / SHARDED_DIR)
    except Exception as err:  # DCP wraps every failure in CheckpointException
        raise ClipspaceError(f"{path / SHARDED_DIR}: cannot load the sharded checkpoint "
                             f"({type(err).__name__}: {str(err)[:300]})") from None
    set_state_dict(state.model, state.optimizer, model_state_dict=target["model"],
                   optim_state_dict=target["optim"])
    return state.restore(saved, rank, with_optimizer=False)


def _check_loadable(path: Path, state: TrainState) -> None:
    """A normal checkpoint (weights + state.pt) loads only into a plain model."""
    if is_sharded(state.model) and not is_sharded_checkpoint(path):
        raise ConfigError(
            f"config key 'run.parallel' (fsdp): {path} is a checkpoint of a run.parallel=ddp "
            "run, which a sharded model cannot resume; resume it with run.parallel=ddp"
        )


def _load_any(path: Path, state: TrainState, rank: int) -> dict[str, Any] | None:
    """A sharded checkpoint through DCP, a normal one as ``rundir.load_resume`` does."""
    _check_loadable(path, state)
    if is_sharded_checkpoint(path):
        return load_sharded(path, state, rank)
    return state.restore(ckpt.load_checkpoint(path, state.model), rank)


def load_resume(checkpoint: Path | None, run_dir: Path, resume: str | None, state: TrainState,
                info: DistInfo) -> tuple[Path | None, dict[str, Any] | None]:
    """``rundir.load_resume`` for runs that read or write sharded checkpoints: with ``--resume
    latest`` the newest checkpoint that loads (a corrupt newer one is skipped with a warning),
    else ``checkpoint``. Returns the checkpoint used and this rank's RNG state."""
    if checkpoint is None:
        return None, None
    if resume != "latest":
        return checkpoint, _load_any(checkpoint, state, info.rank)
    found = ckpt.list_checkpoints(run_dir)
    for _, path in reversed(found):
        _check_loadable(path, state)  # a wrong run.parallel is no corrupt checkpoint
        try:
            return path, _load_any(path, state, info.rank)
        except ClipspaceError as err:
            warnings.warn(f"skipping checkpoint {path}: {err}", stacklevel=2)
    if found:
        raise ClipspaceError(f"{run_dir}: no checkpoint loads ({len(found)} tried, all corrupt)")
    return None, None


def export_weights(source: str | Path, out: str | Path | None = None) -> Path:
    """Consolidate a sharded checkpoint into one normal ``model.safetensors`` (one process, no
    process group). ``source``: a ``step_<N>`` directory or a run directory (its newest
    checkpoint); ``out``: the file to write (default ``<step_N>/model.safetensors``). The model
    is built from the run's ``config.json`` and the pooling ids stored in ``state.pt``."""
    path = ckpt.resolve_checkpoint(source)
    if not is_sharded_checkpoint(path):
        raise ClipspaceError(f"{path}: not a sharded (run.parallel=fsdp) checkpoint; its "
                             f"{ckpt.WEIGHTS_NAME} is already the normal format")
    config_path = ckpt.find_near(path, ckpt.CONFIG_NAME)
    if config_path is None:
        raise ClipspaceError(f"{path}: no {ckpt.CONFIG_NAME} in the run directory")
    cfg = C.load(config_path)
    saved = ckpt.read_state(path / ckpt.STATE_NAME)
    meta = {str(k): str(v) for k, v in dict(saved.get("weights_metadata") or {}).items()}
    model = plain_model(cfg, meta)
    target = {"model": get_model_state_dict(model)}
    try:
        with _dcp_quiet():
            dcp.load(target, checkpoint_id=path / SHARDED_DIR, no_dist=True)
    except Exception as err:  # DCP wraps every failure in CheckpointException
        raise ClipspaceError(f"{path / SHARDED_DIR}: cannot load the sharded checkpoint "
                             f"({type(err).__name__}: {str(err)[:300]})") from None
    model.load_state_dict(target["model"], strict=True)
    return ckpt.write_weights(model, Path(out) if out else path / ckpt.WEIGHTS_NAME)


__all__ = ["FSDP", "SHARDED_DIR", "ShardedCheckpointer", "export_weights", "gather_for_hooks",
           "full_state_dict", "is_sharded", "is_sharded_checkpoint", "load_resume",
           "load_sharded", "mixed_precision", "reduce_replicated", "replicated_params",
           "shard_model", "shard_units", "unsharded", "write_full_weights"]
