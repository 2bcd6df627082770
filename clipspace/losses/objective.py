"""The training objective: contrastive term (+ entailment, + centroid) over a geometry.

Behaviour follows the arguments only (logit kind, loss kind, weights), never a preset name.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor, nn

from clipspace.geometry import geometry_fn, get_geometry
from clipspace.geometry.scalars import LogitScale
from clipspace.losses.atmg import angle_logits, centroid_loss
from clipspace.losses.contrastive import infonce, siglip
from clipspace.losses.distributed import gather_features, rank_labels, world_info
from clipspace.losses.entailment import entailment_loss
from clipspace.losses.logits import LOGIT_KINDS, pairwise_logits

CONTRASTIVE_KINDS: tuple[str, ...] = ("infonce", "siglip", "angle", "none")


def check_terms(
    geometry: ModuleType, contrastive: str, entail_weight: float, centroid_weight: float
) -> None:
    """The one rule for which terms a geometry supports: the angle loss, entailment cones and
    the centroid regulariser are measured from the origin, which the sphere does not have
    (``HAS_ORIGIN``). Also at least one term must be on. Raises ValueError naming the keys."""
    if contrastive not in CONTRASTIVE_KINDS:
        raise ValueError(
            f"unknown contrastive loss {contrastive!r}; allowed: {', '.join(CONTRASTIVE_KINDS)}"
        )
    needs_origin = [name for name, on in (
        ("loss.contrastive=angle", contrastive == "angle"),
        ("loss.entail_weight", entail_weight > 0),
        ("loss.centroid_weight", centroid_weight > 0),
    ) if on]
    if needs_origin and not getattr(geometry, "HAS_ORIGIN", True):
        raise ValueError(
            f"{', '.join(needs_origin)} need(s) a geometry with an origin (euclidean or "
            "lorentz); the sphere has no [ROOT] on the manifold"
        )
    if contrastive == "none" and entail_weight <= 0 and centroid_weight <= 0:
        raise ValueError("loss.contrastive is 'none' and no other loss term is on")


class Objective(nn.Module):
    """Total loss = contrastive(s * M) + entail_weight * L_entail + centroid_weight * L_centroid.

    The contrastive term uses features gathered across ranks (see losses.distributed for the
    gradient convention); with ``local_loss`` the local rows are scored against all gathered
    columns with labels offset by rank. Entailment and centroid terms use the local batch.
    ``contrastive="angle"`` is the ATMG angle loss (logit kind ignored).
    """

    def __init__(
        self,
        geometry: ModuleType | str,
        contrastive: str = "infonce",
        logit: str = "cosine",
        logit_scale: float = 1 / 0.07,
        learn_logit_scale: bool = True,
        max_logit_scale: float = 100.0,
        siglip_bias: float = -10.0,
        entail_weight: float = 0.0,
        entail_min_radius: float = 0.1,
        centroid_weight: float = 0.0,
        centroid_p: float = 2.0,
        centroid_q: float = 0.5,
        local_loss: bool = False,
        gather_with_grad: bool = True,
    ) -> None:
        super().__init__()
        if logit not in LOGIT_KINDS:
            raise ValueError(f"unknown logit kind {logit!r}; allowed: {', '.join(LOGIT_KINDS)}")
        self.geometry = get_geometry(geometry)
        check_terms(self.geometry, contrastive, entail_weight, centroid_weight)
        self.contrastive = contrastive
        self.logit = logit
        self.logit_scale = LogitScale(logit_scale, learn_logit_scale, max_logit_scale)
        self.siglip_bias: nn.Parameter | None = None
        if contrastive == "siglip":
            self.siglip_bias = nn.Parameter(torch.tensor(float(siglip_bias)))
        self.entail_weight = float(entail_weight)
        self.entail_min_radius = float(entail_min_radius)
        self.centroid_weight = float(centroid_weight)
        self.centroid_p = float(centroid_p)
        self.centroid_q = float(centroid_q)
        self.local_loss = bool(local_loss)
        self.gather_with_grad = bool(gather_with_grad)

    def extra_repr(self) -> str:
        return (
            f"geometry={self.geometry.__name__.rsplit('.', 1)[-1]}, "
            f"contrastive={self.contrastive}, logit={self.logit}, "
            f"entail_weight={self.entail_weight}, centroid_weight={self.centroid_weight}"
        )

    def similarity(self, img: Tensor, txt: Tensor, curv: float | Tensor = 1.0) -> Tensor:
        """Un-scaled image-by-text score (B1, B2), larger = better match.

        The contrastive logit kind; for ``contrastive="angle"``: +ext_angle at the image.
        """
        if self.contrastive == "angle":
            return self.geometry.pairwise_ext_angle(img, txt, curv)
        return pairwise_logits(self.logit, img, txt, self.geometry, curv)

    def _contrastive_loss(
        self, img: Tensor, txt: Tensor, curv: float | Tensor, s: Tensor
    ) -> Tensor:
        all_img, all_txt = gather_features(img, txt, self.local_loss, self.gather_with_grad)
        _, world = world_info()
        local = self.local_loss and world > 1
        rows_img, rows_txt = (img, txt) if local else (all_img, all_txt)
        labels = rank_labels(img.shape[0], local, device=img.device)
        geo = self.geometry
        if self.contrastive == "angle":  # ATMG: +ext at the image, -ext at the text
            li, lt = angle_logits(rows_img, rows_txt, geo, curv, all_img, all_txt)
            return infonce(s * li, labels, s * lt)
        li = s * pairwise_logits(self.logit, rows_img, all_txt, geo, curv)
        if self.contrastive == "siglip":
            assert self.siglip_bias is not None
            return siglip(li, self.siglip_bias, labels)
        lt = s * pairwise_logits(self.logit, rows_txt, all_img, geo, curv) if local else None
        return infonce(li, labels, lt)

    @geometry_fn
    def forward(self, img: Tensor, txt: Tensor, curv: float | Tensor = 1.0) -> dict[str, Tensor]:
        """dict: "loss", "loss/contrastive" | "loss/entailment" | "loss/centroid" (active
        terms only) and "logit_scale" (detached)."""
        out: dict[str, Tensor] = {}
        s = self.logit_scale()
        total = img.new_zeros(())
        if self.contrastive != "none":
            out["loss/contrastive"] = self._contrastive_loss(img, txt, curv, s)
            total = total + out["loss/contrastive"]
        if self.entail_weight > 0:
            out["loss/entailment"] = entailment_loss(
                txt, img, self.geometry, curv, self.entail_min_radius
            )
            total = total + self.entail_weight * out["loss/entailment"]
        if self.centroid_weight > 0:
            out["loss/centroid"] = centroid_loss(
                img, txt, self.geometry, curv, self.centroid_p, self.centroid_q
            )
            total = total + self.centroid_weight * out["loss/centroid"]
        out["loss"] = total
        out["logit_scale"] = s.detach().float()
        return out
