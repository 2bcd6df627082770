"""Compositional entailment (HyCoCLIP) with optional radius uncertainty (UNCHA).

docs/reference.md section 2, "Compositional entailment (HyCoCLIP) and uncertainty (UNCHA)".
Pure functions over a geometry module: no model, no preset. Wholes are one image and one
caption per scene (``img``, ``txt``: (B, D)); parts are box crops and box captions
(``box_img``, ``box_txt``: (M, D)) with ``box_scene`` (M,) the row of each part's scene.

HyCoCLIP (github.com/PalAvik/hycoclip @ 08bb05b, hycoclip/models.py L414-470) draws ONE box per
scene per step: ``M = B, box_scene = arange(B)`` gives exactly its loss (with its weights, the
defaults of ``CompositionalWeights``). Several boxes per scene (``box_scene`` repeating) keep the
same terms: each box row is contrasted against the B whole columns (unique columns, the
positive is its own scene's whole) and every cone term averages over the M parts.

``uncertainty=True`` adds UNCHA's radius uncertainty (github.com/jeeit17/UNCHA @ b9aa27d,
uncha/models.py L545-578, L705-717, L762-828) to the HyCoCLIP objective:

- u(p) = softplus(-|p|) per part (|p| the norm of the stored vector: the Lorentz space part, the
  Euclidean point), detached, scales each part -> whole logit row by w = clamp(exp(-u/2), 0.1, 10)
  (w in [exp(-ln2/2), 1]);
- the calibration terms of the two intra-modal cone pairs (box image -> image, box text -> text),
  with u NOT detached and UNCHA's residual r = relu(theta - eta omega) + 0.1 theta detached:
  alpha (mean(0.5 r / exp(u) + 0.5 u) + H(softmax(u))), alpha = 10, each weighted
  ``weights.calibration`` (UNCHA: entail_weight 0.2).

Left out of UNCHA (not part of this option; the HyCoCLIP terms are kept as they are): its three
separate logit scales (1/0.07, 1/0.06, 1/0.05), the part-part contrastive term, the summed (not
averaged) contrastive groups (its two part -> whole CEs weigh 0.5 each, HyCoCLIP's 0.25), the
0.1 theta angle term and the extra
0.5 factor on the intra-modal cone terms in the loss itself, and its per-part duplicated whole
columns (equal to the unique columns here when every scene has one part). The paper text was not
read; these follow the authors' code (docs/reference.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor

from clipspace.geometry import geometry_fn
from clipspace.losses.contrastive import infonce
from clipspace.losses.entailment import entailment_loss
from clipspace.losses.logits import LOGIT_KINDS, pairwise_logits

#: HyCoCLIP's aperture thresholds: inter-modal (text -> image, box text -> box image) and
#: intra-modal (box image -> image, box text -> text) cones; the same K = 0.1 for all four
ETA_INTER = 0.7
ETA_INTRA = 1.2
#: UNCHA: calibration scale alpha, the angle factor of its piecewise residual, the row-weight clamp
CALIBRATION_ALPHA = 10.0
UNCHA_ANGLE_FACTOR = 0.1
ROW_WEIGHT_RANGE = (0.1, 10.0)
UNCERTAINTY_RADII: tuple[str, ...] = ("norm", "geodesic")
#: squared norms are floored here before the sqrt of the uncertainty radius (zero gradient at 0)
_NORM_SQ_MIN = 1e-20

CONE_TERMS: tuple[str, ...] = (
    "entail_text_image",
    "entail_boxtext_boximage",
    "entail_boximage_image",
    "entail_boxtext_text",
)


@dataclass(frozen=True)
class CompositionalWeights:
    """Weight of each reported term; ``loss = sum_k weight_k * term_k`` (active terms only).

    Defaults = HyCoCLIP (``L_cont + 0.2 L_ent`` with ``L_cont`` the mean of four CEs and
    ``L_ent`` half the sum of four cone terms): the whole image<->text InfoNCE (itself the mean of
    two CEs) 0.5, each one-directional part -> whole CE 0.25, each cone term 0.2 * 0.5 = 0.1.
    ``calibration`` weighs each of UNCHA's two calibration terms (only with ``uncertainty``;
    UNCHA's entail_weight 0.2). A weight of 0 switches the term off (it is not computed).
    """

    contrastive: float = 0.5
    box_image_text: float = 0.25
    box_text_image: float = 0.25
    entail_text_image: float = 0.1
    entail_boxtext_boximage: float = 0.1
    entail_boximage_image: float = 0.1
    entail_boxtext_text: float = 0.1
    calibration: float = 0.2

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            ok = isinstance(v, int | float) and not isinstance(v, bool)
            if not ok or not math.isfinite(v) or v < 0:
                raise ValueError(f"CompositionalWeights.{f.name} must be a finite number >= 0, "
                                 f"got {v!r}")

    @classmethod
    def hycoclip(
        cls, contrastive_weight: float = 1.0, entail_weight: float = 0.2, calibration: float = 0.2
    ) -> CompositionalWeights:
        """HyCoCLIP's factorisation: ``contrastive_weight * mean(4 CEs) + entail_weight *
        sum(4 cone terms) / 2`` (models.py L437, L461-470)."""
        c, e = float(contrastive_weight), float(entail_weight)
        return cls(0.5 * c, 0.25 * c, 0.25 * c, 0.5 * e, 0.5 * e, 0.5 * e, 0.5 * e,
                   float(calibration))


def _geometry_name(geometry: ModuleType) -> str:
    return geometry.__name__.rsplit(".", 1)[-1]


def check_compositional(
    geometry: ModuleType, weights: CompositionalWeights, uncertainty: bool = False
) -> None:
    """Cone terms and the radius uncertainty are measured from the origin, which the sphere
    lacks (``HAS_ORIGIN``): raise ValueError naming the geometry and the terms. A spherical
    HyCoCLIP is only its contrastive terms (every cone weight 0, no uncertainty)."""
    needs_origin = [name for name in CONE_TERMS if getattr(weights, name) > 0]
    if uncertainty:
        needs_origin.append("uncertainty")
    if needs_origin and not getattr(geometry, "HAS_ORIGIN", True):
        raise ValueError(
            f"compositional loss: {', '.join(needs_origin)} need(s) a geometry with an origin "
            f"(euclidean or lorentz); the {_geometry_name(geometry)} geometry has no [ROOT] on "
            "the manifold (set those weights to 0 and uncertainty=False for contrastive terms only)"
        )
    if not any(getattr(weights, f.name) > 0 for f in fields(weights) if f.name != "calibration"):
        raise ValueError("compositional loss: every term weight is 0")


@geometry_fn
def radius_uncertainty(
    x: Tensor, geometry: ModuleType, curv: float | Tensor = 1.0, radius: str = "norm"
) -> Tensor:
    """UNCHA's uncertainty u(x) = softplus(-r(x)) = log(1 + exp(-r)), (N,), in (0, ln 2].

    ``radius="norm"``: r = |x| of the stored vector (Lorentz: the space part, as UNCHA's code;
    Euclidean: the point); ``"geodesic"``: r = geometry.dist_to_origin(x) (a clipspace option;
    equal to "norm" in Euclidean space). High near the origin (generic), -> 0 far out.
    """
    if not getattr(geometry, "HAS_ORIGIN", True):
        raise ValueError(f"radius_uncertainty needs a geometry with an origin; the "
                         f"{_geometry_name(geometry)} geometry has none")
    if radius == "norm":
        r = (x * x).sum(-1).clamp_min(_NORM_SQ_MIN).sqrt()
    elif radius == "geodesic":
        r = geometry.dist_to_origin(x, curv)
    else:
        raise ValueError(f"unknown radius {radius!r}; allowed: {', '.join(UNCERTAINTY_RADII)}")
    return F.softplus(-r)


def uncertainty_weights(u: Tensor) -> Tensor:
    """UNCHA's per-row logit weight clamp(exp(-u/2), 0.1, 10) with u detached (models.py
    L705-710); in [exp(-ln2/2), 1] for u = softplus(-r) in (0, ln 2]."""
    return torch.exp(-0.5 * u.detach()).clamp(*ROW_WEIGHT_RANGE)


@geometry_fn
def uncertainty_calibration(
    residual: Tensor, u: Tensor, alpha: float = CALIBRATION_ALPHA
) -> Tensor:
    """UNCHA's calibration (models.py L549-574): with the residual detached,

    alpha * ( mean_m(0.5 r_m / (exp(u_m) + 1e-6) + 0.5 u_m) + H ),  H = -sum_m p_m log(p_m + 1e-8),
    p = softmax(u) over the M parts (exp(u) clamped to [1e-6, 1e6] as in the code).
    """
    var = u.exp().clamp(1e-6, 1e6)
    term = 0.5 * residual.detach() / (var + 1e-6) + 0.5 * u
    p = torch.softmax(u.flatten(), dim=0)
    entropy = -(p * torch.log(p + 1e-8)).sum()
    return alpha * (term.mean() + entropy)


def _check_inputs(img: Tensor, txt: Tensor, box_img: Tensor, box_txt: Tensor,
                  box_scene: Tensor) -> None:
    if img.dim() != 2 or txt.shape != img.shape:
        raise ValueError(f"img and txt must both be (B, D); got {tuple(img.shape)} and "
                         f"{tuple(txt.shape)}")
    if box_img.dim() != 2 or box_txt.shape != box_img.shape or box_img.shape[1] != img.shape[1]:
        raise ValueError(f"box_img and box_txt must both be (M, D) with D = {img.shape[1]}; got "
                         f"{tuple(box_img.shape)} and {tuple(box_txt.shape)}")
    if box_img.shape[0] == 0:
        raise ValueError("compositional loss needs at least one box (M = 0)")
    if box_scene.shape != (box_img.shape[0],) or box_scene.is_floating_point():
        raise ValueError(f"box_scene must be an integer tensor of shape ({box_img.shape[0]},), "
                         f"got {box_scene.dtype} {tuple(box_scene.shape)}")
    if box_scene.device.type == "cpu":  # no device sync on accelerators
        lo, hi = int(box_scene.min()), int(box_scene.max())
        if lo < 0 or hi >= img.shape[0]:
            raise ValueError(f"box_scene values must lie in [0, {img.shape[0]}), got [{lo}, {hi}]")


@geometry_fn
def compositional_loss(
    img: Tensor,
    txt: Tensor,
    box_img: Tensor,
    box_txt: Tensor,
    box_scene: Tensor,
    geometry: ModuleType,
    curv: float | Tensor = 1.0,
    logit_scale: float | Tensor = 1 / 0.07,
    logit: str = "neg_dist",
    weights: CompositionalWeights | None = None,
    uncertainty: bool = False,
    min_radius: float = 0.1,
    eta_inter: float = ETA_INTER,
    eta_intra: float = ETA_INTRA,
    uncertainty_radius: str = "norm",
    all_img: Tensor | None = None,
    all_txt: Tensor | None = None,
    offset: int = 0,
) -> dict[str, Tensor]:
    """HyCoCLIP's compositional objective (+ UNCHA's uncertainty), float32, autocast off.

    Terms (s = ``logit_scale``, M(x, y) = ``pairwise_logits(logit, x, y)``, CE = mean row
    cross-entropy, E(a, c; eta) = mean relu(ext(a, c) - eta aper(a)), K = ``min_radius``):

    - ``loss/contrastive``: infonce(s M(I, T)) = (CE(s M(I, T)) + CE(s M(T, I))) / 2;
    - ``loss/box_image_text``: CE(s w_I M(I_box, T)), target ``box_scene`` (box image -> whole
      texts, one direction); ``loss/box_text_image``: CE(s w_T M(T_box, I)), target ``box_scene``;
      w = 1, or UNCHA's exp(-u/2) of the part (u detached) with ``uncertainty``;
    - ``loss/entail_text_image`` E(T, I; eta_inter), ``loss/entail_boxtext_boximage``
      E(T_box, I_box; eta_inter), ``loss/entail_boximage_image`` E(I_box, I[box_scene];
      eta_intra), ``loss/entail_boxtext_text`` E(T_box, T[box_scene]; eta_intra);
    - with ``uncertainty``: ``loss/calibration_image`` / ``loss/calibration_text``
      (``uncertainty_calibration`` of the intra-modal pairs) and the detached diagnostics
      ``uncertainty/box_image``, ``uncertainty/box_text`` (mean u).

    ``loss`` = sum of weight * term over the terms with weight > 0 (``CompositionalWeights``;
    defaults = HyCoCLIP). Several processes: pass the gathered wholes as ``all_img`` /
    ``all_txt`` (columns of every contrastive term) and the rank's row ``offset`` (targets
    ``arange(B) + offset`` and ``box_scene + offset``); cone and calibration terms stay local.
    """
    weights = CompositionalWeights() if weights is None else weights
    if logit not in LOGIT_KINDS:
        raise ValueError(f"unknown logit kind {logit!r}; allowed: {', '.join(LOGIT_KINDS)}")
    check_compositional(geometry, weights, uncertainty)
    _check_inputs(img, txt, box_img, box_txt, box_scene)
    cols_img = img if all_img is None else all_img
    cols_txt = txt if all_txt is None else all_txt
    box_scene = box_scene.to(device=img.device, dtype=torch.long)
    labels = torch.arange(img.shape[0], device=img.device) + offset
    box_labels = box_scene + offset
    w = weights
    terms: dict[str, Tensor] = {}
    out: dict[str, Tensor] = {}

    if w.contrastive > 0:
        li = pairwise_logits(logit, img, cols_txt, geometry, curv)
        lt = None if all_img is None and all_txt is None else pairwise_logits(
            logit, txt, cols_img, geometry, curv)
        terms["contrastive"] = infonce(
            logit_scale * li, labels, None if lt is None else logit_scale * lt)

    u_img = u_txt = None
    if uncertainty:
        u_img = radius_uncertainty(box_img, geometry, curv, uncertainty_radius)
        u_txt = radius_uncertainty(box_txt, geometry, curv, uncertainty_radius)
        out["uncertainty/box_image"] = u_img.detach().mean()
        out["uncertainty/box_text"] = u_txt.detach().mean()

    for name, rows, cols, u in (("box_image_text", box_img, cols_txt, u_img),
                                ("box_text_image", box_txt, cols_img, u_txt)):
        if getattr(w, name) > 0:
            lg = logit_scale * pairwise_logits(logit, rows, cols, geometry, curv)
            if u is not None:
                lg = uncertainty_weights(u)[:, None] * lg
            terms[name] = F.cross_entropy(lg, box_labels)

    cones = {
        "entail_text_image": (txt, img, eta_inter),
        "entail_boxtext_boximage": (box_txt, box_img, eta_inter),
        "entail_boximage_image": (box_img, img[box_scene], eta_intra),
        "entail_boxtext_text": (box_txt, txt[box_scene], eta_intra),
    }
    calib = {"entail_boximage_image": ("calibration_image", u_img),
             "entail_boxtext_text": ("calibration_text", u_txt)}
    for name, (apex, child, eta) in cones.items():
        want_calib = uncertainty and w.calibration > 0 and name in calib
        if getattr(w, name) <= 0 and not want_calib:
            continue
        viol = entailment_loss(apex, child, geometry, curv, min_radius, eta, reduction="none")
        if getattr(w, name) > 0:
            terms[name] = viol.mean()
        if want_calib:
            key, u = calib[name]
            with torch.no_grad():  # UNCHA's piecewise residual, detached in the calibration
                residual = viol + UNCHA_ANGLE_FACTOR * geometry.ext_angle(apex, child, curv)
            terms[key] = uncertainty_calibration(residual, u)

    total = sum(getattr(w, "calibration" if k.startswith("calibration") else k) * v
                for k, v in terms.items())
    result: dict[str, Tensor] = {"loss": total}
    result.update({f"loss/{k}": v for k, v in terms.items()})
    result.update(out)
    return result

