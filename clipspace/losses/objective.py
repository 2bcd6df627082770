"""The training objective: contrastive term (+ entailment, + centroid) over a geometry.

Behaviour follows the arguments only (logit kind, loss kind, weights), never a preset name.
"""

from __future__ import annotations

import warnings
from functools import partial
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clipspace.geometry import euclidean, geometry_fn, get_geometry, lorentz, sphere
from clipspace.geometry.scalars import LogitScale
from clipspace.losses.atmg import angle_logits, centroid_loss
from clipspace.losses.chunked import chunked_infonce, chunked_siglip
from clipspace.losses.compositional import (
    CompositionalWeights,
    check_compositional,
    compositional_loss,
)
from clipspace.losses.contrastive import infonce, siglip
from clipspace.losses.distributed import gather_features, rank_labels, world_info
from clipspace.losses.entailment import entailment_loss
from clipspace.losses.logits import LOGIT_KINDS, NORMALIZE_EPS, pairwise_logits
from clipspace.losses.ring import SIGLIP_EXCHANGES, ring_siglip

CONTRASTIVE_KINDS: tuple[str, ...] = ("infonce", "siglip", "angle", "none")
#: logit kinds whose value -s d is at most 0 (0 for identical points)
DISTANCE_LOGITS: tuple[str, ...] = ("neg_dist", "neg_sqdist")


def siglip_initial_bias(logit: str) -> float:
    """SigLIP's start for a logit kind, the threshold s M + b = 0 at the most similar pair: -10
    for similarities (Zhai et al. 2023, with s = 10: cos = 1), 0 for distances (d = 0)."""
    return 0.0 if logit in DISTANCE_LOGITS else -10.0


def warn_siglip_bias(contrastive: str, logit: str, siglip_bias: float) -> None:
    """Warn when SigLIP starts a distance logit below 0. SigLIP's initial b = -10 with s = 10
    (Zhai et al. 2023, the sigmoid loss) puts the threshold s M + b = 0 at cos = 1; a distance
    logit is at most 0, so b < 0 keeps even identical points a 'negative' (sigmoid(b) < 0.5) and
    the learnable bias climbs only about lr per step under Adam: training stays near chance
    (docs/experiments.md, the logit grid). b = 0 is the analogue (threshold at d = 0)."""
    if contrastive == "siglip" and logit in DISTANCE_LOGITS and siglip_bias < 0:
        warnings.warn(f"loss.siglip_bias = {siglip_bias:g} with loss.logit = {logit!r}: every "
                      f"pair starts at a logit <= {siglip_bias:g}; a distance logit usually "
                      "wants loss.siglip_bias=0 (docs/losses.md)", stacklevel=3)


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


def check_exchange(siglip_exchange: str, contrastive: str, gather_with_grad: bool) -> None:
    """The ring exchange is SigLIP's and always carries gradients. Raises ValueError."""
    if siglip_exchange not in SIGLIP_EXCHANGES:
        raise ValueError(f"loss.siglip_exchange: unknown {siglip_exchange!r}; allowed: "
                         f"{', '.join(SIGLIP_EXCHANGES)}")
    if siglip_exchange == "ring" and contrastive != "siglip":
        raise ValueError(f"loss.siglip_exchange='ring' needs loss.contrastive='siglip', "
                         f"not {contrastive!r}")
    if siglip_exchange == "ring" and not gather_with_grad:
        raise ValueError("loss.siglip_exchange='ring' passes gradients back round the ring; "
                         "loss.gather_with_grad=false is not supported with it")


class Objective(nn.Module):
    """Total loss = contrastive(s * M) + entail_weight * L_entail + centroid_weight * L_centroid.

    The contrastive term uses features gathered across ranks (see losses.distributed for the
    gradient convention); with ``local_loss`` the local rows are scored against all gathered
    columns with labels offset by rank. The entailment term uses the local batch (a mean over
    pairs, so the rank average is the global mean); the centroid term the gathered batch.
    ``contrastive="angle"`` is the ATMG angle loss (logit kind ignored).

    ``chunk_size`` > 0 computes the contrastive term in row chunks of that many rows
    (``losses.chunked``): the same value and gradients without ever forming the B x N logits,
    for every logit kind and the angle logits, on the local or the gathered rows alike.

    ``compositional``: on batches with parts (box crops and box captions, ``parts`` of
    ``forward``), HyCoCLIP's objective (``losses.compositional``) replaces the contrastive and
    entailment terms: the mean of its four cross-entropies plus ``entail_weight`` x half the sum
    of its four cone terms (+ UNCHA's calibration with ``uncertainty``); batches without parts
    get the usual terms.

    ``siglip_exchange="ring"`` (SigLIP only): no gather; the texts pass round the ranks and each
    rank scores its local images against one text block at a time (``losses.ring``), chunked or
    not. It is a local loss by construction: the rank losses average to the global one.
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
        chunk_size: int = 0,
        siglip_exchange: str = "gather",
        compositional: bool = False,
        eta_inter: float = 0.7,
        eta_intra: float = 1.2,
        uncertainty: bool = False,
        calibration_weight: float = 0.2,
    ) -> None:
        super().__init__()
        check_exchange(siglip_exchange, contrastive, gather_with_grad)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 0:
            raise ValueError(f"loss.chunk_size must be an int >= 0 (0 = unchunked), "
                             f"got {chunk_size!r}")
        if logit not in LOGIT_KINDS:
            raise ValueError(f"unknown logit kind {logit!r}; allowed: {', '.join(LOGIT_KINDS)}")
        self.geometry = get_geometry(geometry)
        check_terms(self.geometry, contrastive, entail_weight, centroid_weight)
        self.contrastive = contrastive
        self.logit = logit
        self.logit_scale = LogitScale(logit_scale, learn_logit_scale, max_logit_scale)
        self.siglip_bias: nn.Parameter | None = None
        warn_siglip_bias(contrastive, logit, float(siglip_bias))
        if contrastive == "siglip":
            self.siglip_bias = nn.Parameter(torch.tensor(float(siglip_bias)))
        self.entail_weight = float(entail_weight)
        self.entail_min_radius = float(entail_min_radius)
        self.centroid_weight = float(centroid_weight)
        self.centroid_p = float(centroid_p)
        self.centroid_q = float(centroid_q)
        self.local_loss = bool(local_loss)
        self.gather_with_grad = bool(gather_with_grad)
        self.chunk_size = chunk_size
        self.siglip_exchange = siglip_exchange
        self.compositional = bool(compositional)
        self.part_weights = CompositionalWeights.hycoclip(1.0, entail_weight, calibration_weight)
        self.eta = (float(eta_inter), float(eta_intra))
        self.uncertainty = bool(uncertainty)
        if self.compositional:
            check_compositional(self.geometry, self.part_weights, self.uncertainty)

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

    @geometry_fn
    def rank_scores(self, img: Tensor, txt: Tensor, curv: float | Tensor = 1.0) -> Tensor:
        """Image-by-text scores (B1, B2) that rank like ``similarity`` in both directions: each
        row orders the texts as similarity's row does (image -> text retrieval), each column
        orders the images as its column does (text -> image). Use for retrieval, not as a logit.

        Every logit kind is one matmul of (D + 0..2)-vectors, without acos, acosh or sqrt:

        - ``dot``, and ``inner`` on the sphere / in Euclidean space: x.y (= similarity);
        - ``cosine`` (any geometry), and ``neg_dist`` / ``neg_sqdist`` on the sphere: the cosine
          (acos is decreasing, its square too on [0, pi]);
        - Euclidean ``neg_dist`` / ``neg_sqdist``: -d^2 = 2 x.y - |x|^2 - |y|^2, as
          [2x, -|x|^2, -1] . [y, 1, |y|^2] (sqrt is increasing);
        - Lorentz ``inner`` / ``neg_dist`` / ``neg_sqdist``: all three decrease in
          u = -c<x, y>_L - 1 = cosh(sqrt(c) d) - 1 (acosh, its square on u >= 0 and
          -(u + 1) / c are monotone), so the score is -u = c x.y - a_x a_y - a_x - a_y with
          a = sqrt(1 + c|x|^2) - 1 = c|x|^2 / (sqrt(1 + c|x|^2) + 1), as
          [x, a_x, 1] . [c y, -(a_y + 1), -a_y] (the cancellation-free u of the geometry);
        - ``contrastive="siglip"``: similarity is the logit kind's M (the loss uses s M + b,
          an increasing affine map for s > 0), so the same as that kind;
        - ``contrastive="angle"``: no monotone shortcut; the exact exterior angle (= similarity).
        - a geometry module other than the three built-in ones: similarity itself.

        The order equals similarity's up to float rounding only: the two are computed by
        different float operations, so pairs whose exact scores differ by a few ulps may swap,
        and scores that similarity rounds or clamps to the same value (acos clamp at
        |cos| > 1 - 1e-6, coincident Lorentz points at u < 1e-10, sqrt/acosh collapsing nearby
        values) can come out distinct here. Exact duplicates of a point tie exactly, as long as
        a matmul entry does not depend on its position (true of the CPU BLAS we measured).
        """
        form = self._rank_form()
        if form == "exact":
            return self.similarity(img, txt, curv)
        if form == "dot":
            return img @ txt.transpose(-1, -2)
        if form == "cosine":
            a = F.normalize(img, dim=-1, eps=NORMALIZE_EPS)
            b = F.normalize(txt, dim=-1, eps=NORMALIZE_EPS)
            return a @ b.transpose(-1, -2)
        nx2, ny2 = (img * img).sum(-1, keepdim=True), (txt * txt).sum(-1, keepdim=True)
        if form == "sqdist":  # -d^2 = 2 x.y - |x|^2 - |y|^2
            p = torch.cat([2.0 * img, -nx2, -torch.ones_like(nx2)], dim=-1)
            q = torch.cat([txt, torch.ones_like(ny2), ny2], dim=-1)
            return p @ q.transpose(-1, -2)
        c = curv if isinstance(curv, Tensor) else torch.tensor(float(curv))
        c = c.to(device=img.device, dtype=img.dtype)
        tx, ty = torch.sqrt(1.0 + c * nx2), torch.sqrt(1.0 + c * ny2)
        ax, ay = c * nx2 / (tx + 1.0), c * ny2 / (ty + 1.0)
        p = torch.cat([img, ax, torch.ones_like(ax)], dim=-1)  # -u = c x.y - a_x (a_y + 1) - a_y
        q = torch.cat([c * txt, -(ay + 1.0), -ay], dim=-1)
        return p @ q.transpose(-1, -2)

    def _rank_form(self) -> str:
        """Which formula ``rank_scores`` uses: exact | dot | cosine | sqdist | lorentz."""
        geo, kind = self.geometry, self.logit
        if self.contrastive == "angle" or geo not in (sphere, euclidean, lorentz):
            return "exact"
        if kind == "dot" or (kind == "inner" and geo is not lorentz):
            return "dot"
        if kind == "cosine" or geo is sphere:
            return "cosine"
        return "lorentz" if geo is lorentz else "sqdist"

    def _contrastive_loss(
        self, img: Tensor, txt: Tensor, curv: float | Tensor, s: Tensor
    ) -> Tensor:
        if self.siglip_exchange == "ring" and world_info()[1] > 1:
            return ring_siglip(partial(self._siglip_block, curv=curv, s=s), img, txt)
        all_img, all_txt = gather_features(img, txt, self.local_loss, self.gather_with_grad)
        _, world = world_info()
        local = self.local_loss and world > 1
        rows_img, rows_txt = (img, txt) if local else (all_img, all_txt)
        labels = rank_labels(img.shape[0], local, device=img.device)
        geo = self.geometry
        if self.chunk_size > 0:
            return self._chunked_contrastive(rows_img, rows_txt, all_img, all_txt, labels,
                                             local, curv, s)
        if self.contrastive == "angle":  # ATMG: +ext at the image, -ext at the text
            li, lt = angle_logits(rows_img, rows_txt, geo, curv, all_img, all_txt)
            return infonce(s * li, labels, s * lt)
        li = s * pairwise_logits(self.logit, rows_img, all_txt, geo, curv)
        if self.contrastive == "siglip":
            assert self.siglip_bias is not None
            return siglip(li, self.siglip_bias, labels)
        lt = s * pairwise_logits(self.logit, rows_txt, all_img, geo, curv) if local else None
        return infonce(li, labels, lt)

    def _chunked_contrastive(
        self, rows_img: Tensor, rows_txt: Tensor, all_img: Tensor, all_txt: Tensor,
        labels: Tensor, local: bool, curv: float | Tensor, s: Tensor,
    ) -> Tensor:
        """``_contrastive_loss`` in row chunks of ``chunk_size``: the same logits (s M, or the
        angle logits +-s ext) as functions of (rows, columns); rows are the local features
        under distributed local loss, else the gathered ones, columns always the gathered."""
        geo, chunk, params = self.geometry, self.chunk_size, (s, curv)
        if self.contrastive == "angle":
            return chunked_infonce(partial(_angle_logits, geo, 1.0), rows_img, all_txt, chunk,
                                   labels, params, logit_fn_t=partial(_angle_logits, geo, -1.0),
                                   txt_rows=rows_txt, img_cols=all_img)
        fn = partial(_scaled_logits, self.logit, geo)
        if self.contrastive == "siglip":
            assert self.siglip_bias is not None
            return chunked_siglip(fn, rows_img, all_txt, self.siglip_bias, chunk, labels, params)
        if not local:  # square: logits_per_text = L^T
            return chunked_infonce(fn, all_img, all_txt, chunk, labels, params)
        return chunked_infonce(fn, rows_img, all_txt, chunk, labels, params,
                               txt_rows=rows_txt, img_cols=all_img)

    def _compositional(self, img: Tensor, txt: Tensor, curv: float | Tensor, s: Tensor,
                       parts: tuple[Tensor, Tensor, Tensor]) -> dict[str, Tensor]:
        """HyCoCLIP's terms; several processes: local rows against the gathered wholes."""
        all_img, all_txt = gather_features(img, txt, True, self.gather_with_grad)
        rank, _ = world_info()
        box_img, box_txt, box_scene = parts
        return compositional_loss(
            img, txt, box_img, box_txt, box_scene, self.geometry, curv, s, self.logit,
            self.part_weights, self.uncertainty, self.entail_min_radius, *self.eta,
            all_img=all_img, all_txt=all_txt, offset=rank * img.shape[0])

    def _siglip_block(self, img: Tensor, txt: Tensor, positives: bool, curv: float | Tensor,
                      s: Tensor) -> Tensor:
        """SigLIP of one (local images, one rank's texts) block of the ring, chunked or not."""
        assert self.siglip_bias is not None
        if self.chunk_size > 0:
            fn = partial(_scaled_logits, self.logit, self.geometry)
            return chunked_siglip(fn, img, txt, self.siglip_bias, self.chunk_size,
                                  params=(s, curv), positives=positives)
        logits = s * pairwise_logits(self.logit, img, txt, self.geometry, curv)
        return siglip(logits, self.siglip_bias, positives=positives)

    @geometry_fn
    def forward(self, img: Tensor, txt: Tensor, curv: float | Tensor = 1.0,
                parts: tuple[Tensor, Tensor, Tensor] | None = None) -> dict[str, Tensor]:
        """dict: "loss", "loss/contrastive" | "loss/entailment" | "loss/centroid" (active
        terms only) and "logit_scale" (detached). ``parts``: (box image points (M, D), box
        text points (M, D), box_scene (M,)) for the compositional objective."""
        out: dict[str, Tensor] = {}
        s = self.logit_scale()
        total = img.new_zeros(())
        composed = self.compositional and parts is not None
        if composed:
            out.update(self._compositional(img, txt, curv, s, parts))
            total = total + out["loss"]
        elif self.contrastive != "none":
            out["loss/contrastive"] = self._contrastive_loss(img, txt, curv, s)
            total = total + out["loss/contrastive"]
        if self.entail_weight > 0 and not composed:
            out["loss/entailment"] = entailment_loss(
                txt, img, self.geometry, curv, self.entail_min_radius
            )
            total = total + self.entail_weight * out["loss/entailment"]
        if self.centroid_weight > 0:
            # midpoints of the global batch (gathered with gradient: every rank holds the same
            # global term, so averaging gradients over ranks gives the one-process gradient)
            all_img, all_txt = gather_features(img, txt, gather_with_grad=True)
            out["loss/centroid"] = centroid_loss(
                all_img, all_txt, self.geometry, curv, self.centroid_p, self.centroid_q
            )
            total = total + self.centroid_weight * out["loss/centroid"]
        out["loss"] = total
        out["logit_scale"] = s.detach().float()
        return out


def _scaled_logits(kind: str, geometry: ModuleType, rows: Tensor, cols: Tensor, s: Tensor,
                   curv: float | Tensor) -> Tensor:
    """s M(rows, cols): the scaled logits of a logit kind (a chunked loss's ``logit_fn``)."""
    return s * pairwise_logits(kind, rows, cols, geometry, curv)


def _angle_logits(geometry: ModuleType, sign: float, rows: Tensor, cols: Tensor, s: Tensor,
                  curv: float | Tensor) -> Tensor:
    """sign s ext(rows_i, cols_j): ATMG's image->text (+1) or text->image (-1) logits, as in
    ``atmg.angle_logits`` (a chunked loss's ``logit_fn``)."""
    return sign * s * geometry.pairwise_ext_angle(rows, cols, curv)
