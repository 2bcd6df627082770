"""Nested trees (dicts of dicts, dataclasses) addressed by dotted keys: ``"optim.lr"``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np


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


def _finite(value: Any, where: str, nulls: list[str]) -> Any:
    """``value`` with every NaN / Inf float replaced by None (its key path added to ``nulls``)
    and numpy scalars / arrays made plain Python."""
    if isinstance(value, Mapping):
        return {k: _finite(v, f"{where}.{k}" if where else str(k), nulls)
                for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_finite(v, f"{where}[{i}]", nulls) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        nulls.append(where)
        return None
    return value


def json_ready(result: Any) -> Any:
    """A copy of a result that ``json.dumps(..., allow_nan=False)`` accepts: every NaN / Inf
    becomes null, and (for a dict) ``notes`` gains one line naming those keys (notes already
    there say why, where it is known)."""
    nulls: list[str] = []
    out = _finite(result, "", nulls)
    if nulls and isinstance(out, dict):
        shown = ", ".join(nulls[:10]) + (f" and {len(nulls) - 10} more" if len(nulls) > 10
                                         else "")
        out["notes"] = [*out.get("notes", []),
                        f"null = not a finite number (undefined for this input): {shown}"]
    return out


def to_json(result: Any, indent: int | None = 2) -> str:
    """``result`` as JSON text that never holds a bare NaN (``json_ready``)."""
    return json.dumps(json_ready(result), indent=indent, allow_nan=False)


__all__ = ["flatten", "get_dotted", "json_ready", "to_json"]
