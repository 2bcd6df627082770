"""Shared loss cases for the loss tests: every loss x relevant geometry, as f(img, txt, curv)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from clipspace.geometry import get_geometry
from clipspace.losses import (
    Objective,
    angle_loss,
    centroid_loss,
    entailment_loss,
    infonce,
    pairwise_logits,
    siglip,
)

LossFn = Callable[[Tensor, Tensor, float | Tensor], Tensor]

LOGITS_PER_GEOMETRY: dict[str, tuple[str, ...]] = {
    "sphere": ("cosine", "neg_dist", "neg_sqdist"),
    "euclidean": ("cosine", "dot", "neg_dist", "neg_sqdist"),
    "lorentz": ("inner", "neg_dist", "neg_sqdist"),
}


def _infonce(kind: str, geo: str) -> LossFn:
    g = get_geometry(geo)
    return lambda i, t, c: infonce(10.0 * pairwise_logits(kind, i, t, g, c))


def _siglip(kind: str, geo: str) -> LossFn:
    g = get_geometry(geo)
    return lambda i, t, c: siglip(10.0 * pairwise_logits(kind, i, t, g, c), -10.0)


def loss_cases() -> dict[str, LossFn]:
    """name -> loss function (img, txt, curv) -> scalar."""
    cases: dict[str, LossFn] = {}
    for geo, kinds in LOGITS_PER_GEOMETRY.items():
        for kind in kinds:
            cases[f"infonce-{geo}-{kind}"] = _infonce(kind, geo)
        cases[f"siglip-{geo}-{kinds[1]}"] = _siglip(kinds[1], geo)
    for geo in ("euclidean", "lorentz"):
        g = get_geometry(geo)
        cases[f"entailment-{geo}"] = lambda i, t, c, g=g: entailment_loss(t, i, g, c)
        cases[f"angle-{geo}"] = lambda i, t, c, g=g: angle_loss(i, t, g, c, 10.0)
        cases[f"centroid-{geo}"] = lambda i, t, c, g=g: centroid_loss(i, t, g, c)
    obj = Objective("lorentz", "infonce", "neg_dist", entail_weight=0.2, centroid_weight=0.5)
    cases["objective-lorentz-all"] = lambda i, t, c: obj(i, t, c)["loss"]
    obj2 = Objective("euclidean", "angle", centroid_weight=0.5)
    cases["objective-euclidean-angle"] = lambda i, t, c: obj2(i, t, c)["loss"]
    obj3 = Objective("sphere", "siglip", "cosine")
    cases["objective-sphere-siglip"] = lambda i, t, c: obj3(i, t, c)["loss"]
    return cases


CASES = loss_cases()

#: (geometry, Objective keyword arguments) of every logit kind in every geometry, plus the
#: angle and SigLIP losses: the cases of the ranking-score tests
RANK_CASES = [
    (geo, {"logit": kind})
    for geo in ("sphere", "euclidean", "lorentz")
    for kind in ("cosine", "dot", "inner", "neg_dist", "neg_sqdist")
] + [
    ("euclidean", {"contrastive": "angle"}),
    ("lorentz", {"contrastive": "angle"}),
    ("sphere", {"contrastive": "siglip", "logit": "cosine"}),
    ("lorentz", {"contrastive": "siglip", "logit": "neg_dist"}),
]
