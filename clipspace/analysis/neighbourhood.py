"""Neighbourhood test (docs/reference.md section 4): per modality, the class-similarity matrix
(cosine between normalised class means); for every class, the normalised Kendall distance between
the rankings of the other classes in the two modalities; averaged (0 = same neighbourhoods, 1 =
reversed).

Normalised Kendall distance (standard): discordant pairs / total pairs, n (n - 1) / 2 pairs of the
n ranked items; a pair tied in either ranking counts as neither concordant nor discordant.
"""

from __future__ import annotations

import numpy as np
import torch

from clipspace.analysis._arrays import ArrayLike, as_labels, chunks, dense_labels, normalize_rows


def kendall_distance(a: ArrayLike, b: ArrayLike) -> float:
    """Discordant pairs / (n (n - 1) / 2) between score vectors ``a`` and ``b`` (O(n^2))."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("kendall_distance needs two vectors of the same length")
    n = len(a)
    if n < 2:
        return 0.0
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    discordant = np.triu((da * db) < 0, k=1).sum()
    return float(discordant) / (n * (n - 1) / 2)


def class_means(x: ArrayLike, labels: ArrayLike, num_classes: int | None = None) -> torch.Tensor:
    """Normalised mean of the normalised embeddings of each class (C, D), float64. ``labels``
    are row indices 0..C-1 (``neighbourhood_test`` re-indexes any ids to that first)."""
    lab = torch.from_numpy(as_labels(labels))
    c = int(num_classes or int(lab.max()) + 1)
    if len(lab) and (int(lab.min()) < 0 or int(lab.max()) >= c):
        raise ValueError(f"class_means: labels must be in 0..{c - 1} (re-index them with "
                         "analysis._arrays.dense_labels)")
    sums = None
    for s, rows in chunks(x):
        rows = normalize_rows(rows).to(torch.float64)
        if sums is None:
            sums = torch.zeros(c, rows.shape[1], dtype=torch.float64)
        sums.index_add_(0, lab[s : s + rows.shape[0]], rows)
    assert sums is not None
    return normalize_rows(sums)


def class_similarity(x: ArrayLike, labels: ArrayLike, num_classes: int | None = None) -> np.ndarray:
    """(C, C) cosine similarity between class means."""
    m = class_means(x, labels, num_classes)
    return (m @ m.T).numpy()


def neighbourhood_test(
    img: ArrayLike,
    txt: ArrayLike,
    labels: ArrayLike,
    txt_labels: ArrayLike | None = None,
) -> dict[str, float | list[float]]:
    """Mean over classes of the Kendall distance between the image- and text-side similarity of
    that class to every other class. ``txt_labels`` defaults to ``labels`` (paired rows). Label
    ids may be any integers (re-indexed to 0..K-1 together; ``classes`` lists the ids)."""
    (lab, tl), ids = dense_labels(labels, labels if txt_labels is None else txt_labels)
    si = class_similarity(img, lab, len(ids))
    st = class_similarity(txt, tl, len(ids))
    present = np.intersect1d(np.unique(lab), np.unique(tl))
    per = []
    for k in present:
        others = present[present != k]
        per.append(kendall_distance(si[k, others], st[k, others]))
    return {
        "kendall": float(np.mean(per)) if per else float("nan"),
        "per_class": [float(v) for v in per],
        "classes": [int(ids[k]) for k in present],
    }
