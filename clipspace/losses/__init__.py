"""Losses over a geometry module (docs/ARCHITECTURE.md "losses"; docs/losses.md).

Every loss takes a geometry module (clipspace.geometry.get_geometry) and knows no paper or preset.
"""

from clipspace.losses.atmg import angle_logits, angle_loss, centroid_loss
from clipspace.losses.chunked import chunked_cross_entropy, chunked_infonce, chunked_siglip
from clipspace.losses.compositional import (
    CompositionalWeights,
    check_compositional,
    compositional_loss,
    radius_uncertainty,
    uncertainty_calibration,
    uncertainty_weights,
)
from clipspace.losses.contrastive import infonce, siglip
from clipspace.losses.distributed import gather_features, rank_labels
from clipspace.losses.entailment import entailment_loss
from clipspace.losses.logits import LOGIT_KINDS, pairwise_logits
from clipspace.losses.objective import (
    CONTRASTIVE_KINDS,
    Objective,
    check_exchange,
    check_terms,
    siglip_initial_bias,
)
from clipspace.losses.radial import (
    chain_angles,
    entailment_cone_finetune_loss,
    pullback_loss,
    radial_loss,
)
from clipspace.losses.ring import SIGLIP_EXCHANGES, ring_shift, ring_siglip

__all__ = [
    "CONTRASTIVE_KINDS",
    "CompositionalWeights",
    "LOGIT_KINDS",
    "Objective",
    "SIGLIP_EXCHANGES",
    "angle_logits",
    "angle_loss",
    "centroid_loss",
    "chain_angles",
    "check_compositional",
    "check_exchange",
    "check_terms",
    "chunked_cross_entropy",
    "chunked_infonce",
    "chunked_siglip",
    "compositional_loss",
    "entailment_cone_finetune_loss",
    "entailment_loss",
    "gather_features",
    "infonce",
    "pairwise_logits",
    "pullback_loss",
    "radial_loss",
    "radius_uncertainty",
    "rank_labels",
    "ring_shift",
    "ring_siglip",
    "siglip_initial_bias",
    "siglip",
    "uncertainty_calibration",
    "uncertainty_weights",
]
