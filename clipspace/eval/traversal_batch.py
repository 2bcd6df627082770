"""Traversals from many images to [ROOT] at once (the batched form of ``eval.traversal``).

The walk is ``eval.traversal.traversal_points``' (geometries with an origin: p_s =
exp_map0(t_s log_map0(x)), t_s from 1 down to 0; the sphere: the great circle from x to the
root direction), for a batch of images at once. At each step the captions of a pool are scored
with ``sim_fn(points, captions)`` and one is retrieved by one of two rules:

* ``"mask"`` (MERU's released ``scripts/image_traversals.py``, used by EuCLIP Fig. 5): only
  captions whose entailment cone contains the point compete (ext_angle(t, p) <= half_aperture(t));
  the best of them is retrieved, none when no cone contains the point ([ROOT] itself is not
  scored: under ATMG's angle score it would always win). Repeats anywhere are dropped.
* ``"keep"`` (``eval.traversal.traverse``, docs/reference.md section 4): the best caption of the
  whole pool is retrieved and kept only if its cone contains the point; consecutive repeats are
  dropped. ``traverse_batch(..., rule="keep")`` returns exactly ``traverse``'s paths.

On the sphere (no origin, no cones) both rules keep the best caption at every step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from clipspace.eval.traversal import traversal_points

RULES: tuple[str, ...] = ("mask", "keep")


@torch.no_grad()
def batch_points(images: Tensor, geometry: Any, curv: Any = 1.0, steps: int = 50,
                 root: Tensor | None = None) -> Tensor:
    """(B, steps, D) traversal points of every image (image first, [ROOT] last): the tangent
    walk in one call where the geometry has an origin and no root is given, else per image
    (``traversal_points``)."""
    x = images.float()
    if getattr(geometry, "HAS_ORIGIN", True) and root is None:
        ts = torch.linspace(0.0, 1.0, steps)
        v = geometry.log_map0(x, curv)
        return geometry.exp_map0((1 - ts)[None, :, None] * v[:, None, :], curv)
    return torch.stack([traversal_points(p, geometry, curv, steps, root) for p in x])


def _dedupe(seq: Sequence[int], consecutive: bool) -> list[int]:
    out: list[int] = []
    for j in seq:
        if j < 0 or (out and out[-1] == j) or (not consecutive and j in out):
            continue
        out.append(j)
    return out


@torch.no_grad()
def retrieve(points: Tensor, captions: Tensor, geometry: Any, sim_fn: Callable[[Tensor, Tensor],
             Tensor], curv: Any = 1.0, rule: str = "mask") -> Tensor:
    """(P,) index of the caption retrieved at each point, -1 for none (rule: module docstring)."""
    if rule not in RULES:
        raise ValueError(f"unknown traversal rule {rule!r}; allowed: {', '.join(RULES)}")
    scores = sim_fn(points, captions).float()
    if not getattr(geometry, "HAS_ORIGIN", True):
        return scores.argmax(1)
    aperture = geometry.half_aperture(captions, curv)
    inside = geometry.pairwise_ext_angle(captions, points, curv).T <= aperture[None, :]
    if rule == "keep":
        best = scores.argmax(1)
        ok = inside.gather(1, best[:, None])[:, 0]
        return torch.where(ok, best, torch.full_like(best, -1))
    masked = scores.masked_fill(~inside, float("-inf"))
    best = masked.argmax(1)
    return torch.where(inside.any(1), best, torch.full_like(best, -1))


@torch.no_grad()
def traverse_batch(
    images: Tensor,
    captions: Tensor,
    texts: Sequence[str],
    geometry: Any,
    sim_fn: Callable[[Tensor, Tensor], Tensor],
    curv: Any = 1.0,
    steps: int = 50,
    root: Tensor | None = None,
    rule: str = "mask",
    batch: int = 32,
) -> list[list[str]]:
    """Captions met on the way from each image (N, D) to [ROOT], most specific first. On the
    sphere ``root`` defaults to ``geometry.default_root(captions)`` as in ``traverse``."""
    if not getattr(geometry, "HAS_ORIGIN", True) and root is None:
        root = geometry.default_root(captions, curv)
    paths: list[list[str]] = []
    for s in range(0, images.shape[0], batch):
        pts = batch_points(images[s : s + batch], geometry, curv, steps, root)
        idx = retrieve(pts.reshape(-1, pts.shape[-1]), captions, geometry, sim_fn, curv, rule)
        for row in idx.reshape(pts.shape[0], steps).tolist():
            paths.append([texts[j] for j in _dedupe(row, consecutive=rule == "keep")])
    return paths


__all__ = ["RULES", "batch_points", "retrieve", "traverse_batch"]
