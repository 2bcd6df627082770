"""Radial Embedding (RE) fine-tuning loss and the entailment-cone (EC) baseline
(docs/reference.md section 3).

Chains are generic -> specific: ``pos[:, k]`` = p_{k+1}, ``neg[:, k]`` = n_{k+1} (sibling of
p_{k+1}); shape (B, 4, D). Xi_r(e, e') is the exterior angle at e of triangle r-e-e' computed by
``geometry.ext_angle_from`` (default: the euclidean module, on L2-normalised CLIP embeddings,
root r = normalised text embedding of the empty caption). n_4 is unused.
"""

from __future__ import annotations

from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor

from clipspace.geometry import euclidean, geometry_fn
from clipspace.losses.logits import NORMALIZE_EPS


@geometry_fn
def chain_angles(
    root: Tensor,
    pos: Tensor,
    neg: Tensor,
    geometry: ModuleType | None = None,
    curv: float | Tensor = 1.0,
) -> tuple[Tensor, Tensor]:
    """(Xi_r(p_k, p_{k+1}), Xi_r(p_k, n_k)) for k = 1..3, each (B, 3); root (D,) or (B, D)."""
    geo = geometry or euclidean
    b, n, d = pos.shape
    parent = pos[:, :-1].reshape(-1, d)
    # root: (D,) shared, or (B, D) one per chain
    r = root.reshape(-1, 1, d).expand(b, n - 1, d).reshape(-1, d)
    child = pos[:, 1:].reshape(-1, d)
    sibling = neg[:, :-1].reshape(-1, d)
    xi_pos = geo.ext_angle_from(r, parent, child, curv).reshape(b, n - 1)
    xi_neg = geo.ext_angle_from(r, parent, sibling, curv).reshape(b, n - 1)
    return xi_pos, xi_neg


@geometry_fn
def pullback_loss(tuned: Tensor, frozen: Tensor) -> Tensor:
    """L_P = (1 - mean_i cos(tuned_i, frozen_i)) / 2."""
    t = F.normalize(tuned, dim=-1, eps=NORMALIZE_EPS)
    f = F.normalize(frozen, dim=-1, eps=NORMALIZE_EPS)
    return (1.0 - (t * f).sum(-1).mean()) / 2


@geometry_fn
def radial_loss(
    root: Tensor,
    pos: Tensor,
    neg: Tensor,
    tuned: Tensor,
    frozen: Tensor,
    lambda_p: float = 10.0,
    lambda_e: float = 1.0,
    lambda_m: float = 1.0,
    geometry: ModuleType | None = None,
    curv: float | Tensor = 1.0,
) -> dict[str, Tensor]:
    """RE loss: L = lambda_p L_P + lambda_e L_E + lambda_m L_M.

    L_E = mean Xi_r(p_k, p_{k+1}) - mean Xi_r(p_k, n_k);  with per-triplet
    D = Xi_r(p_k, p_{k+1}) - Xi_r(p_k, n_k) over all B*3 triplets of the batch,
    L_M = D[i*] + D[j*], i* = argmax positive angle, j* = argmin negative angle;
    L_P = pullback_loss(tuned, frozen). Returns dict(loss, loss_e, loss_m, loss_p).
    """
    xi_pos, xi_neg = chain_angles(root, pos, neg, geometry, curv)
    loss_e = xi_pos.mean() - xi_neg.mean()
    dpos, dneg = xi_pos.reshape(-1), xi_neg.reshape(-1)
    diff = dpos - dneg
    i_star = torch.argmax(dpos.detach())
    j_star = torch.argmin(dneg.detach())
    loss_m = diff[i_star] + diff[j_star]
    loss_p = pullback_loss(tuned, frozen)
    loss = lambda_p * loss_p + lambda_e * loss_e + lambda_m * loss_m
    return {"loss": loss, "loss_e": loss_e, "loss_m": loss_m, "loss_p": loss_p}


@geometry_fn
def entailment_cone_finetune_loss(
    root: Tensor,
    pos: Tensor,
    neg: Tensor,
    tuned: Tensor | None = None,
    frozen: Tensor | None = None,
    min_radius: float = 0.1,
    margin: float = 0.1,
    lambda_p: float = 10.0,
    geometry: ModuleType | None = None,
    curv: float | Tensor = 1.0,
) -> dict[str, Tensor]:
    """EC baseline (unverified variant, docs/reference.md section 3): with the aperture
    a(e) = asin(min(1, K / |e - r|)), positives relu(Xi_r(p_k, p_{k+1}) - a(p_k)), negatives
    relu(margin - (Xi_r(p_k, n_k) - a(p_k))), each averaged over the B*3 triplets;
    plus lambda_p L_P when tuned/frozen are given.
    The aperture uses the Euclidean distance to the root (the geometry of the fine-tuned CLIP).
    Returns dict(loss, loss_pos, loss_neg[, loss_p]).
    """
    xi_pos, xi_neg = chain_angles(root, pos, neg, geometry, curv)
    r = root if root.dim() == 1 else root[:, None, :]
    rad = (pos[:, :-1] - r).pow(2).sum(-1).clamp_min(1e-30).sqrt()  # (B, 3)
    lim = 1.0 - 1e-6
    aper = torch.asin((min_radius / rad).clamp(max=lim))
    loss_pos = torch.relu(xi_pos - aper).mean()
    loss_neg = torch.relu(margin - (xi_neg - aper)).mean()
    out = {"loss": loss_pos + loss_neg, "loss_pos": loss_pos, "loss_neg": loss_neg}
    if tuned is not None and frozen is not None:
        out["loss_p"] = pullback_loss(tuned, frozen)
        out["loss"] = out["loss"] + lambda_p * out["loss_p"]
    return out


__all__ = [
    "chain_angles",
    "pullback_loss",
    "radial_loss",
    "entailment_cone_finetune_loss",
]
