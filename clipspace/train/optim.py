"""AdamW with decay only on weight matrices, warmup-then-cosine learning rate, gradient clipping.

docs/reference.md section 2: AdamW (betas (0.9, 0.98), eps 1e-6, wd 0.2) with no weight decay
on gains, biases, logit scale, alphas and curvature; linear warmup then cosine decay. Which
parameters skip decay is the model's declaration (``ClipModel.no_weight_decay_names``:
also the token/positional embedding tables and class tokens).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from clipspace.config import OptimConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups of the trainable parameters: decayed, and the model's
    ``no_weight_decay_names()`` (wd 0). The model owns the rule; a module without that method
    exempts every tensor with ndim < 2. Each group carries its parameter "names"."""
    declared = getattr(model, "no_weight_decay_names", None)
    skip = set(declared()) if callable(declared) else {
        n for n, p in model.named_parameters() if p.ndim < 2}
    groups: dict[str, dict[str, Any]] = {
        "decay": {"params": [], "names": [], "weight_decay": float(weight_decay),
                  "group": "decay"},
        "no_decay": {"params": [], "names": [], "weight_decay": 0.0, "group": "no_decay"},
    }
    for name, param in model.named_parameters():
        if param.requires_grad:
            group = groups["no_decay" if name in skip else "decay"]
            group["params"].append(param)
            group["names"].append(name)
    return [g for g in groups.values() if g["params"]]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over ``param_groups`` with ``cfg``'s lr, betas, eps and weight decay."""
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.eps,
    )


def lr_factor(step: int, cfg: OptimConfig) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based).

    warmup: (step + 1) / warmup_steps for step < warmup_steps; then cosine:
    min_ratio + (1 - min_ratio) * (1 + cos(pi * t)) / 2 with t = (step - warmup) / (steps - warmup).
    ``schedule = "constant"`` keeps 1 after warmup.
    """
    warmup = max(0, cfg.warmup_steps)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, cfg.steps - warmup)
    t = min(1.0, (step - warmup) / span)
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


class WarmupCosine:
    """LambdaLR-like schedule whose state is just the step count (resumable via state_dict).

    Call ``apply()`` before ``optimizer.step()`` and ``step()`` after it.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        self.base_lrs = [cfg.lr for _ in optimizer.param_groups]
        self.last_step = 0

    def lr(self) -> float:
        return self.cfg.lr * lr_factor(self.last_step, self.cfg)

    def apply(self) -> float:
        """Set every group's lr for the coming optimizer step; return it."""
        factor = lr_factor(self.last_step, self.cfg)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor
        return self.cfg.lr * factor

    def step(self) -> None:
        self.last_step += 1

    def state_dict(self) -> dict[str, Any]:
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_step = int(state["last_step"])
        self.base_lrs = list(state["base_lrs"])


def clip_gradients(params: list[torch.Tensor], max_norm: float) -> float:
    """Clip the global L2 norm of the gradients to ``max_norm`` (<= 0: no clipping); return it."""
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return 0.0
    if max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(grads, max_norm))
    return float(torch.linalg.vector_norm(torch.stack([g.grad.norm() for g in grads])))
