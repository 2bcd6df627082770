"""Training: ``train(config, resume=None, overwrite=False, hooks=None) -> run dir``.

Modules: ``loop`` (the loop), ``optim`` (AdamW groups, warmup-cosine, clipping), ``accumulation``
(gradient-cached micro-batches), ``checkpoint`` (atomic step_<N> dirs, RNG capture),
``distributed`` (torchrun init, gradient averaging), ``logger`` (metrics.jsonl, TensorBoard).
"""

from __future__ import annotations

from typing import Any

__all__ = ["train", "RunExistsError", "ValLossHook"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from clipspace.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'clipspace.train' has no attribute {name!r}")
