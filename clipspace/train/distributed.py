"""torchrun-style data parallelism: init from env vars, gradient averaging, rank-0-only writes.

Launch: ``torchrun --nproc_per_node=N -m clipspace.cli train ...`` (gloo on CPU, NCCL on CUDA).
Gradients are averaged with one all-reduce per step over a flat buffer (what DDP does, without
its forward hooks: the gradient-cached accumulation path calls ``encode_image``/``encode_text``
outside ``forward``, which DDP would not see). Features are gathered with gradients inside the
loss (``clipspace.losses.distributed.gather_features``).

Timeouts: the process group is created with ``timeout = run.dist_timeout`` seconds (default 300;
torch's own default is 30 minutes). A rank that stops answering (frozen by SIGSTOP, stuck in I/O,
killed) then stops the others after that long instead of blocking them for half an hour:

* gloo (CPU): the collective raises on every rank still running; the collectives of this module
  re-raise it as :class:`CollectiveError`, naming the operation (e.g. ``all_reduce of
  gradients``), this rank and the timeout. Which rank stopped answering is named only with two
  ranks (the other one); with more, the backend does not say: it is the one whose log stops
  first.
* NCCL (CUDA): torch's watchdog aborts each waiting process after the timeout, logging the
  operation (``OpType=ALLREDUCE``), its sequence number and the timeout.

The rendezvous in ``init_process_group`` uses the same timeout, so a rank that never starts is
reported after ``run.dist_timeout`` seconds too.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from clipspace.config.schema import RunConfig

#: seconds a collective waits for every rank (the default of ``run.dist_timeout``)
DEFAULT_TIMEOUT_S: float = RunConfig.dist_timeout


class CollectiveError(RuntimeError):
    """A collective failed (a rank stopped answering within the timeout, or died); the message
    names the operation, this rank and ``run.dist_timeout``."""


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: torch.device, timeout_s: float = DEFAULT_TIMEOUT_S) -> DistInfo:
    """Join the process group described by torchrun's RANK / WORLD_SIZE / LOCAL_RANK / MASTER_*;
    every collective then waits at most ``timeout_s`` seconds (``run.dist_timeout``)."""
    world = env_world_size()
    if world <= 1:
        return DistInfo(timeout_s=timeout_s)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    here = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout_s))
        here = True
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, initialized_here=here,
                    timeout_s=timeout_s)


@contextmanager
def collective(op: str, info: DistInfo) -> Iterator[None]:
    """Run one collective; its failure is re-raised as :class:`CollectiveError` naming ``op``,
    this rank and the timeout (the usual cause: another rank stopped answering)."""
    try:
        yield
    except RuntimeError as err:  # gloo timeouts and closed connections (DistBackendError)
        first = (str(err).strip().splitlines() or [""])[0][:300]
        who = f"rank {1 - info.rank}" if info.world_size == 2 else "another rank"
        raise CollectiveError(
            f"rank {info.rank} of {info.world_size}: {op} failed; every rank waits at most "
            f"run.dist_timeout={info.timeout_s:g} s, so most likely {who} stopped answering "
            f"(frozen, killed or far slower) ({type(err).__name__}: {first})"
        ) from err


def cleanup(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_parameters(module: torch.nn.Module, info: DistInfo) -> None:
    """Make every rank start from rank 0's weights and buffers."""
    if not info.distributed:
        return
    with torch.no_grad(), collective("broadcast of parameters", info):
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def average_gradients(params: list[torch.Tensor], info: DistInfo) -> None:
    """Average ``.grad`` over ranks with one flat all-reduce.

    Every rank runs the same graph, so the set of parameters with a gradient is the same on all.
    """
    if not info.distributed:
        return
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.reshape(-1).float() for p in params])
    with collective("all_reduce of gradients", info):
        dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def mean_scalars(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average logged scalars over ranks (local-batch terms become global means)."""
    if not info.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    with collective("all_reduce of logged scalars", info):
        dist.all_reduce(t)
    t /= info.world_size
    return dict(zip(keys, t.cpu().tolist(), strict=True))


def broadcast_object(obj: object, info: DistInfo) -> object:
    if not info.distributed:
        return obj
    box = [obj]
    with collective("broadcast_object_list", info):
        dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.distributed:
        with collective("barrier", info):
            dist.barrier()
