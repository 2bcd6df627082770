"""Feature gathering across ranks for contrastive losses (open_clip conventions).

Gradient convention (checked by tests/losses/test_distributed.py): with ``gather_with_grad``
the backward of the gather sums the gradients of every rank's loss into the local features, so
with ``local_loss=False`` (every rank computes the full global loss) or ``local_loss=True``
(rank r: its own rows against all columns; the global loss is the mean over ranks) the gradient
a rank sees for its local features is ``world_size`` times the single-process gradient of the
global-batch loss. DDP then averages parameter gradients over ranks, which divides by
``world_size`` again: the result equals one process training on the global batch.
Without ``gather_with_grad`` the other ranks' features are constants and only the local slice
carries gradient (open_clip's behaviour): with ``local_loss=False`` a rank's local-feature
gradient equals the single-process gradient, so DDP-averaged parameter gradients are
1/world_size of single-process ones. All ranks must hold the same local batch size.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True when torch.distributed is initialised with world_size > 1."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_info() -> tuple[int, int]:
    """(rank, world_size); (0, 1) when not distributed."""
    if not is_distributed():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 whose backward all-reduces (sums) the gradient of the gathered
    tensor and returns the local slice: d(sum_r loss_r)/d x_local. Works on any backend."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        rank, world = world_info()
        ctx.rank, ctx.n = rank, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def _gather_no_grad(x: Tensor) -> Tensor:
    rank, world = world_info()
    parts = [torch.empty_like(x) for _ in range(world)]
    with torch.no_grad():
        dist.all_gather(parts, x.detach().contiguous())
    parts[rank] = x  # the local slice keeps its gradient
    return torch.cat(parts, dim=0)


def gather_features(
    img: Tensor, txt: Tensor, local_loss: bool = False, gather_with_grad: bool = True
) -> tuple[Tensor, Tensor]:
    """Concatenate (B, D) features of all ranks in rank order -> (world_size * B, D) each.

    Identity when not distributed. ``local_loss`` does not change what is gathered (the caller
    uses local rows against these gathered columns); it is accepted for open_clip parity.
    """
    del local_loss
    if not is_distributed():
        return img, txt
    if gather_with_grad:
        return _GatherWithGrad.apply(img), _GatherWithGrad.apply(txt)
    return _gather_no_grad(img), _gather_no_grad(txt)


def rank_labels(
    n_local: int, local_loss: bool, device: torch.device | str | None = None
) -> Tensor:
    """Positive column of each logit row: arange(n_local) + rank * n_local for local loss,
    arange(world_size * n_local) otherwise (identical to arange(n_local) when not distributed)."""
    rank, world = world_info()
    if local_loss:
        return torch.arange(n_local, device=device) + rank * n_local
    return torch.arange(n_local * world, device=device)
