"""MERU-style traversals from image embeddings toward [ROOT] (docs/reference.md section 4).

The walk. Geometries with an origin: v = log_map0(x), points p_s = exp_map0(t_s v) for t_s from 1
down to 0 (toward a given root r: the tangent interpolation (1 - s) log_map0(x) + s log_map0(r)).
The sphere (no origin): the great circle from x to the root direction.

At each step the captions of a pool are scored with ``sim_fn(points, captions)`` and one is
retrieved by a rule:

* ``"keep"`` (docs/reference.md section 4; ``traverse``'s default): the best caption of the whole
  pool is retrieved and kept only if its cone contains the point
  (ext_angle(t, p) <= half_aperture(t)); consecutive repeats are dropped.
* ``"mask"`` (MERU's released ``scripts/image_traversals.py``, used by EuCLIP Fig. 5): only
  captions whose cone contains the point compete; the best of them is retrieved, none when no
  cone contains the point ([ROOT] itself is not scored: under ATMG's angle score it would
  always win). Repeats anywhere are dropped.
* ``"best"``: the best caption at every step, no cone test; consecutive repeats are dropped.

On the sphere (no cones) every rule keeps the best caption at every step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

RULES: tuple[str, ...] = ("keep", "mask", "best")


def _has_origin(geometry: Any) -> bool:
    return bool(getattr(geometry, "HAS_ORIGIN", True))


def _slerp(x: Tensor, r: Tensor, ts: Tensor) -> Tensor:
    """(B, S, D) points on the great circles from each unit row of x (t = 0) to unit r (t = 1):
    (sin((1 - t) w) x + sin(t w) r) / sin w with cos w = x.r; linear where sin w < 1e-6."""
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    r = r / r.norm().clamp_min(1e-12)
    omega = torch.acos((x @ r).clamp(-1 + 1e-6, 1 - 1e-6))[:, None, None]  # (B, 1, 1)
    so = torch.sin(omega)
    t = ts[None, :, None]
    arc = (torch.sin((1 - t) * omega) * x[:, None] + torch.sin(t * omega) * r) / so
    line = (1 - t) * x[:, None] + t * r
    pts = torch.where(so < 1e-6, line, arc)
    return pts / pts.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def traversal_points(
    image_points: Tensor, geometry: Any, curv: Any = 1.0, steps: int = 50,
    root: Tensor | None = None,
) -> Tensor:
    """Points from each image (first) to [ROOT] (last): (steps, D) for one point (D,),
    (B, steps, D) for a batch (B, D)."""
    x = image_points.float()
    single = x.dim() == 1
    x = x.reshape(-1, x.shape[-1])
    ts = torch.linspace(0.0, 1.0, steps)
    if _has_origin(geometry):
        v = geometry.log_map0(x, curv)[:, None, :]
        tangent = (1 - ts)[None, :, None] * v
        if root is not None:
            tangent = tangent + ts[None, :, None] * geometry.log_map0(root.float()[None], curv)
        pts = geometry.exp_map0(tangent, curv)
    elif root is None:
        raise ValueError("a geometry without an origin needs a root direction")
    else:
        pts = _slerp(x, root.float(), ts)
    return pts[0] if single else pts


@torch.no_grad()
def retrieve(points: Tensor, captions: Tensor, geometry: Any, sim_fn: Callable[[Tensor, Tensor],
             Tensor], curv: Any = 1.0, rule: str = "keep") -> Tensor:
    """(P,) index of the caption retrieved at each point, -1 for none (rule: module docstring)."""
    if rule not in RULES:
        raise ValueError(f"unknown traversal rule {rule!r}; allowed: {', '.join(RULES)}")
    scores = sim_fn(points, captions).float()
    if rule == "best" or not _has_origin(geometry):
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


def _dedupe(seq: Sequence[int], consecutive: bool) -> list[int]:
    out: list[int] = []
    for j in seq:
        if j < 0 or (out and out[-1] == j) or (not consecutive and j in out):
            continue
        out.append(j)
    return out


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
    """Captions met on the way from each image (N, D) to [ROOT], most specific first, ``batch``
    images at a time. On the sphere ``root`` defaults to ``geometry.default_root(captions)``."""
    if not _has_origin(geometry) and root is None:
        root = geometry.default_root(captions, curv)
    paths: list[list[str]] = []
    for s in range(0, images.shape[0], batch):
        pts = traversal_points(images[s : s + batch], geometry, curv, steps, root)
        idx = retrieve(pts.reshape(-1, pts.shape[-1]), captions, geometry, sim_fn, curv, rule)
        for row in idx.reshape(pts.shape[0], steps).tolist():
            paths.append([texts[j] for j in _dedupe(row, consecutive=rule != "mask")])
    return paths


@torch.no_grad()
def traverse(
    image_point: Tensor,
    caption_points: Tensor,
    captions: Sequence[str],
    geometry: Any,
    sim_fn: Callable[[Tensor, Tensor], Tensor],
    curv: Any = 1.0,
    steps: int = 50,
    root: Tensor | None = None,
    cone_test: bool = True,
) -> list[str]:
    """Captions met on the way from one image to [ROOT], most specific first (rule ``"keep"``,
    or ``"best"`` without the cone test)."""
    return traverse_batch(image_point.reshape(1, -1), caption_points, captions, geometry, sim_fn,
                          curv, steps, root, rule="keep" if cone_test else "best")[0]


__all__ = ["RULES", "retrieve", "traversal_points", "traverse", "traverse_batch"]
