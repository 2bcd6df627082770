"""Hierarchy metrics: the HierarCaps protocol and radius/specificity correlation
(docs/reference.md section 4, HierarCaps paper; docs/evaluation.md, "Hierarchy details").

``hierarcaps_metrics`` gives the numbers of the official HierarCaps evaluator
(github.com/TAU-VAILab/hierarcaps, commit ba22b8914db10973e38d2c03f08bb4dce7ba118e,
code/evaluation/hierarchical_retrieval.py) when it is given the same embeddings
(tests/eval/test_hierarcaps_official.py checks it against that evaluator's outputs):

* radius rho(t) of a candidate caption: ``hierarchy_radius`` (on the sphere the chord
  |e/|e| - r/|r|| to the root, as the official code measures it; ``geometry.dist`` elsewhere);
* thresholds: numpy ``linspace(min rho, max rho, n)`` (float64), rounded to rho's dtype and
  compared ``rho <= t`` in that dtype, as torch compares a float32 tensor with a Python float;
* prediction at a threshold: the candidate of highest similarity among those with rho <= t;
  among equal similarities the one that comes first in ``candidates`` (the official code takes
  the first maximum in (row, level) order, so pass candidates in first-occurrence order);
  consecutive duplicates are dropped, and only the set of predictions is scored;
* rows that show the same image (``groups``) form one image whose references are all their
  chains: precision = |pred & union of references| / |pred|, recall = share of the levels k for
  which some reference's level k is predicted; both are averaged over images;
* tau_d: mean over rows of Kendall's tau between the stable argsort of the row's GT radii and
  1..L, i.e. 1 - 2 D / (L (L - 1) / 2) with D the pairs of levels whose radii are strictly in the
  wrong order (tied radii count as in order).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor
from tqdm.auto import tqdm

from clipspace.geometry import sphere

SimFn = Callable[[Tensor, Tensor], Tensor]


def root_distance(points: Tensor, geometry: Any, curv: Any = 1.0, root: Tensor | None = None
                  ) -> Tensor:
    """rho = geometry.dist(points, root); root defaults to ``geometry.default_root(points)``."""
    if root is None:
        root = geometry.default_root(points, curv)
    r = root.reshape(1, -1).to(points.dtype).expand_as(points)
    return geometry.dist(points, r, curv)


def hierarchy_radius(points: Tensor, geometry: Any, curv: Any = 1.0,
                     root: Tensor | None = None) -> Tensor:
    """The radius of the hierarchy protocol, (N,).

    Sphere: the chord |p/|p| - r/|r||, computed as the official HierarCaps evaluator does (its
    thresholds are spaced along this radius, so the geodesic angle, although it orders points
    the same way, gives other predictions). Euclidean and Lorentz: ``root_distance`` (the
    geometry's own ``dist``). ``root`` defaults to ``geometry.default_root(points)``."""
    if geometry is not sphere:
        return root_distance(points, geometry, curv, root)
    if root is None:
        root = geometry.default_root(points, curv)
    dtype = points.dtype if points.dtype in (torch.float32, torch.float64) else torch.float32
    x = points.to(dtype)
    r = root.reshape(-1).to(dtype=dtype, device=x.device)
    x = x / x.norm(dim=-1, keepdim=True)
    r = r / r.norm()
    return (x - r).norm(dim=-1)


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


def tau_d_rows(radii: np.ndarray) -> np.ndarray:
    """Row-wise tau_d of the HierarCaps evaluator for radii (N, L) of levels 1..L.

    The official code takes Kendall's tau between ``argsort(radii)`` and 1..L. A permutation
    and its inverse have the same number of inversions, and a stable argsort keeps tied levels
    in level order, so this is 1 - 2 D / P with D the level pairs i < j with r_i > r_j and
    P = L (L - 1) / 2: a tie counts as in order (unlike tau-b, ``kendall_tau_vs_rank``)."""
    r = np.asarray(radii, dtype=np.float64)
    n = r.shape[1]
    i, j = np.triu_indices(n, k=1)
    discordant = (r[:, i] > r[:, j]).sum(1)
    return 1.0 - 2.0 * discordant / (n * (n - 1) / 2)


def drop_consecutive(seq: Sequence[str]) -> list[str]:
    out: list[str] = []
    for s in seq:
        if not out or out[-1] != s:
            out.append(s)
    return out


def threshold_levels(rho: Tensor, n_thresholds: int = 50) -> Tensor:
    """``numpy.linspace(min rho, max rho, n)`` in float64, then in rho's dtype and device (the
    official evaluator compares its float32 radii with these Python floats in float32)."""
    lo, hi = float(rho.min()), float(rho.max())
    levels = torch.from_numpy(np.linspace(lo, hi, n_thresholds))
    return levels.to(dtype=rho.dtype, device=rho.device)


def threshold_predictions(
    sims: Tensor, rho: Tensor, n_thresholds: int = 50
) -> Tensor:
    """(N, T) candidate indices: per threshold t, the argmax similarity among candidates with
    rho <= t; among equal similarities the lowest candidate index wins.

    O(N M log M): candidates are ranked by (similarity descending, index), then a cumulative
    min of the ranks runs over the candidates sorted by rho."""
    m = sims.shape[1]
    order = torch.argsort(rho, stable=True)
    counts = torch.searchsorted(rho[order], threshold_levels(rho, n_thresholds), right=True)
    counts = counts.clamp(min=1).to(sims.device)
    by_sim = torch.sort(sims, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(by_sim)
    rank.scatter_(1, by_sim, torch.arange(m, device=sims.device).expand_as(by_sim))
    order = order.to(sims.device)
    _, arg = torch.cummin(rank[:, order], dim=1)
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
    groups: Sequence[Hashable] | None = None,
) -> dict[str, Any]:
    """Precision, recall and tau_d of the HierarCaps protocol (the official evaluator's rules,
    module docstring).

    img (N, D) image points, one per row; candidates (M, D) caption points with texts
    ``candidate_texts`` and radii ``rho`` (M,); ground_truth[i] = the GT chain of row i,
    generic to specific; ``gt_rho`` (N, L) their radii (default: looked up by caption string
    among the candidates). ``groups[i]``: an image key; rows with equal keys are one image (the
    first row's point) with several references. Without it every row is its own image.
    Precision and recall average over images, tau_d over rows.
    """
    n = img.shape[0]
    if len(ground_truth) != n:
        raise ValueError(f"{len(ground_truth)} ground-truth rows for {n} images")
    keys = list(range(n)) if groups is None else list(groups)
    if len(keys) != n:
        raise ValueError(f"{len(keys)} image groups for {n} images")
    members: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        members.setdefault(key, []).append(i)
    first = torch.tensor([rows[0] for rows in members.values()], dtype=torch.long)
    refs = [[list(ground_truth[i]) for i in rows] for rows in members.values()]
    texts = list(candidate_texts)
    prec, rec, preds_out = [], [], []
    for s in tqdm(range(0, len(first), chunk), desc="hierarcaps", disable=not progress,
                  leave=False):
        sims = sim_fn(img[first[s : s + chunk].to(img.device)], candidates)
        idx = threshold_predictions(sims, rho, n_thresholds).tolist()
        for row, gts in zip(idx, refs[s : s + chunk], strict=True):
            pred = drop_consecutive([texts[j] for j in row])
            ps = set(pred)
            gs = {g for gt in gts for g in gt}
            depth = max(len(gt) for gt in gts)
            prec.append(len(ps & gs) / len(ps))
            rec.append(sum(any(k < len(gt) and gt[k] in ps for gt in gts)
                           for k in range(depth)) / depth)
            if return_predictions:
                preds_out.append(pred)
    if gt_rho is None:
        lookup = dict(zip(texts, rho.tolist(), strict=True))
        try:
            gt_rho = np.array([[lookup[g] for g in gt] for gt in ground_truth], dtype=np.float64)
        except KeyError as err:
            raise ValueError(f"ground-truth caption {err} is not among the candidates") from None
    tau = tau_d_rows(gt_rho)
    out: dict[str, Any] = {
        "precision": float(np.mean(prec)),
        "recall": float(np.mean(rec)),
        "tau_d": float(np.mean(tau)),
        "n": n,
        "images": len(first),
        "candidates": len(texts),
    }
    if return_predictions:
        out["predictions"] = preds_out
    return out


def specificity_correlation(rho: Any, specificity: Any) -> float:
    """Spearman correlation between distance to [ROOT] and specificity (e.g. attribute count)."""
    r = np.asarray(rho, dtype=np.float64)
    s = np.asarray(specificity, dtype=np.float64)
    if len(np.unique(s)) < 2 or len(np.unique(r)) < 2:
        return float("nan")
    return float(spearmanr(r, s).statistic)
