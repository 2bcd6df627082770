"""``clipspace plan``: the memory one GPU needs for a training config at a world size, printed
before any GPU is rented.

Per GPU, for global batch B over W processes (b = B / W samples each):

* weights, gradients: 4 bytes per parameter each (fp32 masters; bf16 autocast computes in bf16
  but keeps fp32 weights and gradients); optimizer: AdamW's two fp32 moments, 8 bytes per
  parameter. ``ddp`` keeps all of it on every GPU; ``fsdp`` shards it W ways (plus one unsharded
  block's weights and gradients at a time, ignored here).
* activations: MEASURED, not modelled: forward passes of the real model on this machine's CPU
  at 1, 2 and 3 samples, under the config's precision, counting every tensor autograd saves for
  backward (``torch.autograd.graph.saved_tensors_hooks``; parameters excluded, shared storages
  once). saved(n) = fixed + per_sample n + per_pair n^2 exactly (the n^2 term: the loss's n x n
  logit matrices), so three passes give all three. With activation checkpointing per
  transformer block (``model.grad_checkpointing``) the blocks keep only their inputs and one
  block's activations live at a time during backward: per_sample - sum(blocks) + sum(block
  inputs) + max(block).
* contrastive logits: per_pair x b x B (local rows against the gathered columns); with a
  chunked loss (``loss.chunk_size`` = c) per_pair x c x B; SigLIP's ring exchange
  (``loss.siglip_exchange=ring``) scores one rank's b texts at a time: B becomes b.

What it leaves out: allocator fragmentation, CUDA context (~0.5-1 GB), communication buckets
(DDP: ~25 MB per bucket), temporary buffers of the backward pass. Treat the total as a lower
bound and keep 10-20 % headroom.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from clipspace.config import Config, ConfigError
from clipspace.models import create_model, transformer_blocks

PARALLEL = ("ddp", "fsdp")
BYTES_PER_PARAM = {"weights": 4, "gradients": 4, "optimizer": 8}  # fp32, fp32, AdamW m + v


@dataclass
class ActivationProfile:
    """Saved-for-backward bytes of one forward pass: fixed, per sample, per (image, text) pair of
    the loss's logits, and per sample of each block and its input."""

    per_sample: int
    fixed: int
    per_pair: int = 0
    block_per_sample: list[int] = field(default_factory=list)
    block_input_per_sample: list[int] = field(default_factory=list)

    def bytes(self, batch: int, checkpointing: bool) -> int:
        """Saved bytes at ``batch`` samples, with or without per-block checkpointing."""
        if not checkpointing or not self.block_per_sample:
            return self.fixed + batch * self.per_sample
        kept = (self.per_sample - sum(self.block_per_sample)
                + sum(self.block_input_per_sample) + max(self.block_per_sample))
        return self.fixed + batch * kept


@dataclass
class MemoryPlan:
    """Memory per GPU of one training config at one world size (module docstring)."""

    params: dict[str, int]
    world_size: int
    parallel: str
    global_batch: int
    precision: str
    activations: ActivationProfile
    chunk_size: int = 0
    ring: bool = False

    @property
    def per_gpu_batch(self) -> int:
        return self.global_batch // self.world_size

    def state_bytes(self) -> dict[str, int]:
        """Weights, gradients and optimizer state per GPU."""
        total = sum(self.params.values())
        shards = self.world_size if self.parallel == "fsdp" else 1
        return {k: -(-total * b // shards) for k, b in BYTES_PER_PARAM.items()}

    def logit_bytes(self) -> int:
        rows = min(self.chunk_size, self.per_gpu_batch) if self.chunk_size else self.per_gpu_batch
        cols = self.per_gpu_batch if self.ring else self.global_batch
        return self.activations.per_pair * rows * cols

    def rows(self) -> list[tuple[str, int]]:
        """(label, bytes) of each part and the totals without and with checkpointing."""
        b = self.per_gpu_batch
        state = self.state_bytes()
        act, act_ckpt = self.activations.bytes(b, False), self.activations.bytes(b, True)
        base = sum(state.values()) + self.logit_bytes()
        return [("weights (fp32)", state["weights"]), ("gradients (fp32)", state["gradients"]),
                ("optimizer (AdamW m, v)", state["optimizer"]),
                (f"activations ({b} samples)", act),
                ("activations with model.grad_checkpointing", act_ckpt),
                (f"contrastive logits ({'chunked' if self.chunk_size else 'full'})",
                 self.logit_bytes()),
                ("total", base + act), ("total with model.grad_checkpointing", base + act_ckpt)]

    def text(self) -> str:
        """The plan as the CLI prints it."""
        n = sum(self.params.values())
        head = [f"parameters: {n / 1e6:.1f}M (" + ", ".join(
            f"{k} {v / 1e6:.1f}M" for k, v in self.params.items()) + ")",
            f"global batch {self.global_batch} over {self.world_size} process(es) "
            f"({self.parallel}): {self.per_gpu_batch} samples per GPU, precision "
            f"{self.precision}"]
        width = max(len(label) for label, _ in self.rows())
        body = [f"  {label:<{width}}  {human(v):>10}" for label, v in self.rows()]
        return "\n".join([*head, "per GPU:", *body])


def human(n: float) -> str:
    """Bytes in B / KiB / MiB / GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def count_params(model: nn.Module) -> dict[str, int]:
    """Parameters of the image tower, the text tower and the rest (projections, scalars)."""
    towers = {"image": getattr(model, "visual", None), "text": getattr(model, "text", None)}
    counts = {k: sum(p.numel() for p in m.parameters()) if m is not None else 0
              for k, m in towers.items()}
    counts["other"] = sum(p.numel() for p in model.parameters()) - sum(counts.values())
    return counts


class _SavedBytes:
    """Counts the storages autograd saves (parameters excluded, each storage once), in total
    and per running block."""

    def __init__(self, model: nn.Module) -> None:
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.seen: set[int] = set()
        self.total = 0
        self.block: int | None = None
        self.per_block: dict[int, int] = {}
        self.block_input: dict[int, int] = {}

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in self.params and ptr not in self.seen:
            self.seen.add(ptr)
            n = t.untyped_storage().nbytes()
            self.total += n
            if self.block is not None:
                self.per_block[self.block] = self.per_block.get(self.block, 0) + n
        return t

    def enter(self, i: int) -> Callable[..., None]:
        def hook(_m: nn.Module, args: tuple[Any, ...]) -> None:
            self.block = i
            self.block_input[i] = self.block_input.get(i, 0) + sum(
                a.numel() * a.element_size() for a in args if torch.is_tensor(a))
        return hook

    def leave(self, *_: Any) -> None:
        self.block = None


def _one_pass(model: nn.Module, batch: int, cfg: Config, autocast: Any) -> _SavedBytes:
    counter = _SavedBytes(model)
    blocks = transformer_blocks(model)
    handles = [h for i, b in enumerate(blocks) for h in (
        b.register_forward_pre_hook(counter.enter(i)), b.register_forward_hook(counter.leave))]
    gen = torch.Generator().manual_seed(0)
    img = cfg.model.image
    images = torch.randn(batch, img.in_channels, img.image_size, img.image_size, generator=gen)
    tokens = torch.randint(1, cfg.model.text.vocab_size,
                           (batch, cfg.model.text.context_length), generator=gen)
    try:
        with torch.autograd.graph.saved_tensors_hooks(counter.pack, lambda t: t), autocast:
            model(images, tokens)
    finally:
        for h in handles:
            h.remove()
    return counter


def profile_activations(model: nn.Module, cfg: Config, precision: str) -> ActivationProfile:
    """``ActivationProfile`` from passes at 1, 2 and 3 samples (module docstring)."""
    model.train()

    def autocast() -> Any:
        return (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16"
                else nullcontext())

    one, two, three = (_one_pass(model, b, cfg, autocast()) for b in (1, 2, 3))
    per_pair = max((three.total - 2 * two.total + one.total) // 2, 0)
    per_sample = two.total - one.total - 3 * per_pair
    blocks = sorted(two.per_block)
    per_block = [max(two.per_block[i] - one.per_block.get(i, 0), 0) for i in blocks]
    inputs = [max(two.block_input[i] - one.block_input.get(i, 0), 0) for i in blocks]
    return ActivationProfile(per_sample, one.total - per_sample - per_pair, per_pair, per_block,
                             inputs)


def plan_memory(cfg: Config, world_size: int = 1, parallel: str = "ddp") -> MemoryPlan:
    """The ``MemoryPlan`` of ``cfg`` (towers, ``data.batch_size`` as the global batch,
    ``run.precision``; auto means bf16, the GPU default) at ``world_size`` processes."""
    if parallel not in PARALLEL:
        raise ConfigError(f"--parallel must be one of {', '.join(PARALLEL)}, got {parallel!r}")
    if world_size < 1:
        raise ConfigError(f"--world-size must be >= 1, got {world_size}")
    if cfg.data.batch_size < world_size:
        raise ConfigError(f"data.batch_size = {cfg.data.batch_size} is smaller than the world "
                          f"size {world_size}: every process needs at least one sample")
    precision = "bf16" if cfg.run.precision == "auto" else cfg.run.precision
    model = create_model(cfg)
    return MemoryPlan(params=count_params(model), world_size=world_size, parallel=parallel,
                      global_batch=cfg.data.batch_size, precision=precision,
                      activations=profile_activations(model, cfg, precision),
                      chunk_size=cfg.loss.chunk_size,
                      ring=cfg.loss.siglip_exchange == "ring")


__all__ = ["ActivationProfile", "MemoryPlan", "PARALLEL", "count_params", "human",
           "plan_memory", "profile_activations", "transformer_blocks"]
