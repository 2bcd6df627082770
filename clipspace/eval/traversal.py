"""MERU-style traversal from an image embedding toward [ROOT] (docs/reference.md section 4).

Geometries with an origin: v = log_map0(x), steps p_s = exp_map0(t_s v) for t_s from 1 down to 0;
at each step the caption of highest similarity in the pool is retrieved and kept if its cone
contains the point (ext_angle(text, p) <= half_aperture(text)). Sphere (no origin): p_s is the
spherical interpolation from x toward the root direction and the cone test is skipped.
Consecutive duplicates are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor


def _slerp(x: Tensor, r: Tensor, ts: Tensor) -> Tensor:
    """Points on the great circle from unit x (t=0) to unit r (t=1)."""
    x = x / x.norm().clamp_min(1e-12)
    r = r / r.norm().clamp_min(1e-12)
    omega = torch.acos((x @ r).clamp(-1 + 1e-6, 1 - 1e-6))
    so = torch.sin(omega)
    if float(so) < 1e-6:
        pts = (1 - ts)[:, None] * x + ts[:, None] * r
    else:
        pts = (torch.sin((1 - ts) * omega)[:, None] * x + torch.sin(ts * omega)[:, None] * r) / so
    return pts / pts.norm(dim=1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def traversal_points(
    image_point: Tensor, geometry: Any, curv: Any = 1.0, steps: int = 50,
    root: Tensor | None = None,
) -> Tensor:
    """(steps, D) points from the image (first) to [ROOT] (last)."""
    x = image_point.reshape(-1).float()
    ts = torch.linspace(0.0, 1.0, steps)
    if getattr(geometry, "HAS_ORIGIN", True) and root is None:
        v = geometry.log_map0(x[None], curv)[0]
        return geometry.exp_map0((1 - ts)[:, None] * v[None], curv)
    if root is None:
        raise ValueError("a geometry without an origin needs a root direction")
    if getattr(geometry, "HAS_ORIGIN", True):
        # walk toward a given root in the tangent space at the origin
        v, vr = geometry.log_map0(torch.stack([x, root.float()]), curv)
        return geometry.exp_map0((1 - ts)[:, None] * v + ts[:, None] * vr, curv)
    return _slerp(x, root.float(), ts)


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
    """Captions met on the way from the image to [ROOT], most specific first."""
    has_origin = bool(getattr(geometry, "HAS_ORIGIN", True))
    if not has_origin and root is None:
        root = geometry.default_root(caption_points, curv)
    pts = traversal_points(image_point, geometry, curv, steps, root)
    best = sim_fn(pts, caption_points).argmax(1)
    out: list[str] = []
    for p, j in zip(pts, best.tolist(), strict=True):
        if has_origin and cone_test:
            t = caption_points[j : j + 1]
            if float(geometry.ext_angle(t, p[None], curv)[0]) > float(
                geometry.half_aperture(t, curv)[0]
            ):
                continue
        if not out or out[-1] != captions[j]:
            out.append(captions[j])
    return out
