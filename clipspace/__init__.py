"""clipspace: CLIP-style image-text models in spherical, Euclidean and hyperbolic space.

Public API (imported lazily so that ``import clipspace`` stays fast):
``create_model``, ``get_tokenizer``, ``train``, ``evaluate``, ``resolve_config``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "create_model": ("clipspace.models", "create_model"),
    "get_tokenizer": ("clipspace.data.tokenizer", "get_tokenizer"),
    "train": ("clipspace.train", "train"),
    "evaluate": ("clipspace.eval", "evaluate"),
    "resolve_config": ("clipspace.config", "resolve"),
    "Config": ("clipspace.config", "Config"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'clipspace' has no attribute {name!r}")
