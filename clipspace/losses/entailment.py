"""Entailment-cone loss (MERU / EuCLIP; docs/reference.md section 2): the text is the apex.

L = mean_i max(0, ext(t_i, v_i) - eta aper(t_i)) over positive pairs of the local batch; ext is
the exterior angle at the text of triangle O-t-v, aper the cone half-aperture with
K = min_radius. MERU: eta = 1; HyCoCLIP scales the aperture angle per term (eta = 0.7 / 1.2,
``losses.compositional``).
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor

from clipspace.geometry import geometry_fn

ENTAIL_REDUCTIONS: tuple[str, ...] = ("mean", "none")


@geometry_fn
def entailment_loss(
    txt: Tensor,
    img: Tensor,
    geometry: ModuleType,
    curv: float | Tensor = 1.0,
    min_radius: float = 0.1,
    eta: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """mean relu(ext_angle(txt, img) - eta * half_aperture(txt, min_radius)), in float32.

    ``txt`` is the apex (generic), ``img`` the child (specific), row by row. ``eta`` multiplies
    the aperture angle (not the asin argument), as HyCoCLIP's aperture threshold does; eta = 1 is
    MERU's loss. ``reduction="none"`` returns the per-pair violations (B,).
    """
    if reduction not in ENTAIL_REDUCTIONS:
        raise ValueError(
            f"unknown reduction {reduction!r}; allowed: {', '.join(ENTAIL_REDUCTIONS)}")
    ext = geometry.ext_angle(txt, img, curv)
    aper = geometry.half_aperture(txt, curv, min_radius=min_radius)
    violation = torch.relu(ext - eta * aper)
    return violation if reduction == "none" else violation.mean()
