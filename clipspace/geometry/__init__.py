"""Geometry layer: pure tensor functions, one module per geometry with the same names.

See docs/ARCHITECTURE.md ("geometry") and docs/geometry.md for the formulas.
"""

from __future__ import annotations

from types import ModuleType

from . import euclidean, lorentz, sphere
from ._numerics import geometry_fn

GEOMETRIES: dict[str, ModuleType] = {
    "sphere": sphere,
    "euclidean": euclidean,
    "lorentz": lorentz,
}


def get_geometry(name: str | ModuleType) -> ModuleType:
    """Geometry module by name ("sphere" | "euclidean" | "lorentz"); a module passes through."""
    if isinstance(name, ModuleType):
        return name
    try:
        return GEOMETRIES[name]
    except KeyError:
        raise ValueError(
            f"unknown geometry {name!r}; expected one of {sorted(GEOMETRIES)}"
        ) from None


__all__ = ["GEOMETRIES", "geometry_fn", "get_geometry", "sphere", "euclidean", "lorentz"]
