"""Hierarchy metrics: the HierarCaps protocol and radius/specificity correlation
(docs/reference.md section 4, HierarCaps paper).

Protocol: candidates = all 4N test captions; radius rho(t) = distance of e_t to the root r
(``geometry.dist`` to ``geometry.default_root`` or to a given root such as the embedding of "");
50 thresholds linspace(min rho, max rho); at each threshold the prediction is the candidate of
highest similarity among those with rho <= threshold; consecutive duplicates are dropped.
Precision = |set(pred) & GT| / |set(pred)|; recall = fraction of the 4 GT levels predicted
(string match); tau_d = mean over rows of Kendall tau (tau-b) between the GT radii and 1..4.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

SimFn = Callable[[Tensor, Tensor], Tensor]


def root_distance(points: Tensor, geometry: Any, curv: Any = 1.0, root: Tensor | None = None
                  ) -> Tensor:
    """rho = geometry.dist(points, root); root defaults to ``geometry.default_root(points)``."""
    if root is None:
        root = geometry.default_root(points, curv)
    r = root.reshape(1, -1).to(points.dtype).expand_as(points)
    return geometry.dist(points, r, curv)


def kendall_tau_vs_rank(radii: np.ndarray) -> np.ndarray:
    """Row-wise Kendall tau-b between ``radii`` (N, L) and the order 1..L (no ties there)."""
    r = np.asarray(radii, dtype=np.float64)
    n = r.shape[1]
    i, j = np.triu_indices(n, k=1)
    s = np.sign(r[:, j] - r[:, i])  # rank j > rank i, so concordant when r_j > r_i
    pairs = n * (n - 1) / 2
    ties = (s == 0).sum(1)
    denom = np.sqrt(pairs * np.maximum(pairs - ties, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(denom > 0, s.sum(1) / np.where(denom > 0, denom, 1), 0.0)
    return tau


def drop_consecutive(seq: Sequence[str]) -> list[str]:
    out: list[str] = []
    for s in seq:
        if not out or out[-1] != s:
            out.append(s)
    return out


def threshold_predictions(
    sims: Tensor, rho: Tensor, n_thresholds: int = 50
) -> Tensor:
    """(N, T) candidate indices: per threshold, argmax similarity among candidates with rho <= t.

    O(N M log M) via a cumulative max over candidates sorted by rho."""
    rho = rho.to(torch.float64)
    order = torch.argsort(rho, stable=True)
    rs = rho[order]
    thresholds = torch.linspace(float(rs[0]), float(rs[-1]), n_thresholds, dtype=torch.float64)
    counts = torch.searchsorted(rs, thresholds, right=True).clamp(min=1)
    counts[-1] = len(rs)  # linspace end point can round below max rho
    _, arg = torch.cummax(sims[:, order], dim=1)
    return order[arg[:, counts - 1]]


def hierarcaps_metrics(
    img: Tensor,
    candidates: Tensor,
    candidate_texts: Sequence[str],
    rho: Tensor,
    ground_truth: Sequence[Sequence[str]],
    sim_fn: SimFn,
    n_thresholds: int = 50,
    gt_rho: np.ndarray | None = None,
    chunk: int = 256,
    progress: bool = False,
    return_predictions: bool = False,
) -> dict[str, Any]:
    """Precision, recall and tau_d of the HierarCaps protocol.

    img (N, D) image points; candidates (M, D) caption points with texts ``candidate_texts`` and
    radii ``rho`` (M,); ground_truth[i] = the 4 GT captions of image i, generic to specific;
    ``gt_rho`` (N, 4) their radii (default: looked up by caption string among the candidates).
    """
    n = img.shape[0]
    if len(ground_truth) != n:
        raise ValueError(f"{len(ground_truth)} ground-truth rows for {n} images")
    texts = list(candidate_texts)
    prec, rec, preds_out = [], [], []
    for s in tqdm(range(0, n, chunk), desc="hierarcaps", disable=not progress, leave=False):
        sims = sim_fn(img[s : s + chunk], candidates)
        idx = threshold_predictions(sims, rho, n_thresholds).tolist()
        for row, gt in zip(idx, ground_truth[s : s + chunk], strict=True):
            pred = drop_consecutive([texts[j] for j in row])
            ps, gs = set(pred), set(gt)
            hit = len(ps & gs)
            prec.append(hit / len(ps))
            rec.append(sum(g in ps for g in gt) / len(gt))
            if return_predictions:
                preds_out.append(pred)
    if gt_rho is None:
        lookup = dict(zip(texts, rho.tolist(), strict=True))
        try:
            gt_rho = np.array([[lookup[g] for g in gt] for gt in ground_truth], dtype=np.float64)
        except KeyError as err:
            raise ValueError(f"ground-truth caption {err} is not among the candidates") from None
    tau = kendall_tau_vs_rank(gt_rho)
    out: dict[str, Any] = {
        "precision": float(np.mean(prec)),
        "recall": float(np.mean(rec)),
        "tau_d": float(np.mean(tau)),
        "n": n,
        "candidates": len(texts),
    }
    if return_predictions:
        out["predictions"] = preds_out
    return out


def specificity_correlation(rho: Any, specificity: Any) -> float:
    """Spearman correlation between distance to [ROOT] and specificity (e.g. attribute count)."""
    from scipy.stats import spearmanr

    r = np.asarray(rho, dtype=np.float64)
    s = np.asarray(specificity, dtype=np.float64)
    if len(np.unique(s)) < 2 or len(np.unique(r)) < 2:
        return float("nan")
    return float(spearmanr(r, s).statistic)
