"""Nested trees (dicts of dicts, dataclasses) addressed by dotted keys: ``"optim.lr"``."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any


def get_dotted(tree: Any, dotted: str, default: Any = None) -> Any:
    """``tree["a"]["b"]`` (or ``tree.a.b`` for dataclasses) for ``"a.b"``; ``default`` if any
    part is missing."""
    node = tree
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif is_dataclass(node) and part in {f.name for f in fields(node)}:
            node = getattr(node, part)
        else:
            return default
    return node


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a.b.c": leaf}`` (a parsed TOML file, a results JSON)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


__all__ = ["flatten", "get_dotted"]
