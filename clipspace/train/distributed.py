"""torchrun-style data parallelism: init from env vars, gradient averaging, rank-0-only writes.

Launch: ``torchrun --nproc_per_node=N -m clipspace.cli train ...`` (gloo on CPU, NCCL on CUDA).
Gradients are averaged with one all-reduce per step over a flat buffer (what DDP does, without
its forward hooks: the gradient-cached accumulation path calls ``encode_image``/``encode_text``
outside ``forward``, which DDP would not see). Features are gathered with gradients inside the
loss (``clipspace.losses.distributed.gather_features``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group described by torchrun's RANK / WORLD_SIZE / LOCAL_RANK / MASTER_*."""
    world = env_world_size()
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    here = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        here = True
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, initialized_here=here)


def cleanup(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_parameters(module: torch.nn.Module, info: DistInfo) -> None:
    """Make every rank start from rank 0's weights and buffers."""
    if not info.distributed:
        return
    with torch.no_grad():
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
    dist.all_reduce(t)
    t /= info.world_size
    return dict(zip(keys, t.cpu().tolist(), strict=True))


def broadcast_object(obj: object, info: DistInfo) -> object:
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()
