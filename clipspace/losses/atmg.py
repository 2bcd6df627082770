"""ATMG angle-based contrastive loss and centroid regulariser (REFERENCE section 2).

Angle logits (from the authors' code): image->text  +s ext(v_i, t_j) (angle at the image, large
is good), text->image  -s ext(t_i, v_j) (angle at the text, small is good); symmetric
cross-entropy. Both are optimal with the image on the ray O->text beyond the text. Works with
any geometry that has an origin (euclidean, lorentz).
"""

from __future__ import annotations

from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor

from clipspace.losses.logits import as_float, as_float_curv, no_autocast


def angle_logits(
    img: Tensor, txt: Tensor, geometry: ModuleType, curv: float | Tensor = 1.0
) -> tuple[Tensor, Tensor]:
    """Un-scaled (image->text (B1,B2) = +ext(v_i, t_j), text->image (B2,B1) = -ext(t_i, v_j))."""
    img, txt, curv = as_float(img), as_float(txt), as_float_curv(curv)
    with no_autocast(img.device.type):
        i2t = geometry.pairwise_ext_angle(img, txt, curv)
        t2i = -geometry.pairwise_ext_angle(txt, img, curv)
        return i2t, t2i


def angle_loss(
    img: Tensor,
    txt: Tensor,
    geometry: ModuleType,
    curv: float | Tensor = 1.0,
    scale: float | Tensor = 1 / 0.07,
    labels: Tensor | None = None,
) -> Tensor:
    """(CE(s ext(v_i, t_j), labels) + CE(-s ext(t_i, v_j), labels)) / 2 (square batch)."""
    i2t, t2i = angle_logits(img, txt, geometry, curv)
    s = as_float(scale) if isinstance(scale, Tensor) else scale
    with no_autocast(i2t.device.type):
        if labels is None:
            labels = torch.arange(i2t.shape[0], device=i2t.device)
        return (F.cross_entropy(s * i2t, labels) + F.cross_entropy(s * t2i, labels)) / 2


def centroid_loss(
    img: Tensor,
    txt: Tensor,
    geometry: ModuleType,
    curv: float | Tensor = 1.0,
    p: float = 2.0,
    q: float = 0.5,
) -> Tensor:
    """|dist_to_origin(midpoint(images)) - p| + |dist_to_origin(midpoint(texts)) - q|.

    midpoint is the geometry's (Einstein midpoint in Lorentz, mean in Euclidean).
    """
    img, txt, curv = as_float(img), as_float(txt), as_float_curv(curv)
    with no_autocast(img.device.type):
        ri = geometry.dist_to_origin(geometry.midpoint(img, curv), curv)
        rt = geometry.dist_to_origin(geometry.midpoint(txt, curv), curv)
        return (ri - p).abs().sum() + (rt - q).abs().sum()
