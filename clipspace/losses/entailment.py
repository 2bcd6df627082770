"""Entailment-cone loss (MERU / EuCLIP; docs/reference.md section 2): the text is the apex.

L = mean_i max(0, ext(t_i, v_i) - aper(t_i)) over positive pairs of the local batch; ext is the
exterior angle at the text of triangle O-t-v, aper the cone half-aperture with K = min_radius.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor

from clipspace.geometry import geometry_fn


@geometry_fn
def entailment_loss(
    txt: Tensor,
    img: Tensor,
    geometry: ModuleType,
    curv: float | Tensor = 1.0,
    min_radius: float = 0.1,
) -> Tensor:
    """mean relu(ext_angle(txt, img) - half_aperture(txt, min_radius)), in float32."""
    ext = geometry.ext_angle(txt, img, curv)
    aper = geometry.half_aperture(txt, curv, min_radius=min_radius)
    return torch.relu(ext - aper).mean()
