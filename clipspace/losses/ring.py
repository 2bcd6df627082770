"""SigLIP across ranks without gathering: the ring (neighbour) exchange of the SigLIP paper
(Zhai et al. 2023, Sec. 3.3 "efficient chunked implementation") and open_clip's ``SigLipLoss``
``dist_impl="shift"``.

Rank r holds B local images and texts. Its loss is its own rows against every rank's texts:

    loss_r = [ siglip(I_r, T_r) + sum_{k=1}^{W-1} siglip_neg(I_r, T_{r-k}) ],

each term divided by the local batch B; T_{r-k} reaches rank r after k shifts of the texts one
rank to the right, and only rank r's own texts hold its positives. The mean of loss_r over ranks
is the global-batch SigLIP loss. At no time does a rank hold more than two text blocks, so the
memory of the texts and of the logits is O(B x B) per rank instead of O(B x W B) after a gather.

Gradients follow the gather-with-grad convention of ``losses.distributed``: the backward of a
shift sends the gradient back one rank to the left, so a rank's text gradient is the sum over
ranks of d loss_r / d T_local, world_size times the one-process gradient of the global loss
(images appear only in their own rank's loss); DDP's averaging then reproduces one process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from clipspace.losses.distributed import world_info

#: block_loss(img_rows, txt_cols, positives) -> that block's SigLIP (divided by the rows)
BlockLoss = Callable[[Tensor, Tensor, bool], Tensor]

#: how SigLIP sees the other ranks' texts: all-gather them, or pass them round the ring
SIGLIP_EXCHANGES: tuple[str, ...] = ("gather", "ring")


def _shift(x: Tensor, to_right: bool) -> Tensor:
    """Send ``x`` one rank to the right (or left) and receive the left (right) neighbour's."""
    rank, world = world_info()
    dst, src = ((rank + 1) % world, (rank - 1) % world) if to_right else \
        ((rank - 1) % world, (rank + 1) % world)
    out = torch.empty_like(x)
    ops = [dist.P2POp(dist.isend, x.contiguous(), dst), dist.P2POp(dist.irecv, out, src)]
    for req in dist.batch_isend_irecv(ops):
        req.wait()
    return out


class _RingShift(torch.autograd.Function):
    """Forward: the left neighbour's tensor. Backward: the gradient goes back to it."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # type: ignore[override]
        return _shift(x, to_right=True)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        return _shift(grad, to_right=False)


def ring_shift(x: Tensor) -> Tensor:
    """The tensor of rank (r - 1) mod W on rank r, with gradient (identity when not distributed)."""
    _, world = world_info()
    return x if world == 1 else _RingShift.apply(x)


def ring_siglip(block_loss: BlockLoss, img: Tensor, txt: Tensor) -> Tensor:
    """sum over the W text blocks of ``block_loss(img, T_{r-k}, positives=(k == 0))``: rank r's
    share loss_r of the global SigLIP loss (module docstring). ``block_loss`` is the unchunked
    or the chunked SigLIP of one block with its labels on the diagonal."""
    _, world = world_info()
    total = block_loss(img, txt, True)
    other = txt
    for _ in range(world - 1):
        other = ring_shift(other)
        total = total + block_loss(img, other, False)
    return total


__all__ = ["SIGLIP_EXCHANGES", "BlockLoss", "ring_shift", "ring_siglip"]
