"""ATMG angle-based contrastive loss and centroid regulariser (docs/reference.md section 2).

Angle logits (from the authors' code): image->text  +s ext(v_i, t_j) (angle at the image, large
is good), text->image  -s ext(t_i, v_j) (angle at the text, small is good); symmetric
cross-entropy. Both are optimal with the image on the ray O->text beyond the text. Works with
any geometry that has an origin (euclidean, lorentz).
"""

from __future__ import annotations

from types import ModuleType

from torch import Tensor

from clipspace.geometry import geometry_fn
from clipspace.losses.contrastive import infonce


@geometry_fn
def angle_logits(
    img: Tensor,
    txt: Tensor,
    geometry: ModuleType,
    curv: float | Tensor = 1.0,
    all_img: Tensor | None = None,
    all_txt: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Un-scaled ATMG logits: image->text (B1, N2) = +ext(v_i, t_j) and text->image (B2, N1) =
    -ext(t_i, v_j), the columns ``all_txt`` / ``all_img`` (default: ``txt`` / ``img``; the
    gathered batch under distributed local loss)."""
    cols_txt = txt if all_txt is None else all_txt
    cols_img = img if all_img is None else all_img
    return (geometry.pairwise_ext_angle(img, cols_txt, curv),
            -geometry.pairwise_ext_angle(txt, cols_img, curv))


@geometry_fn
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
    return infonce(scale * i2t, labels, scale * t2i)


@geometry_fn
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
    ri = geometry.dist_to_origin(geometry.midpoint(img, curv), curv)
    rt = geometry.dist_to_origin(geometry.midpoint(txt, curv), curv)
    return (ri - p).abs().sum() + (rt - q).abs().sum()
