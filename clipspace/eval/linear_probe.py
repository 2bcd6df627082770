"""Linear probe on frozen image features: scikit-learn logistic regression, with the inverse
regularisation C chosen on a held-out validation split of the training features, then refit on
all training features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x)


def linear_probe(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0, 100.0),
    val_fraction: float = 0.2,
    max_iter: int = 500,
    seed: int = 0,
) -> dict[str, float]:
    """``{"accuracy", "C", "val_accuracy"}`` of a logistic-regression probe."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xtr, ytr = _np(train_x).astype(np.float64), _np(train_y).astype(np.int64)
    xte, yte = _np(test_x).astype(np.float64), _np(test_y).astype(np.int64)
    scaler = StandardScaler().fit(xtr)
    xtr, xte = scaler.transform(xtr), scaler.transform(xte)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(xtr))
    n_val = max(1, int(round(val_fraction * len(xtr))))
    val, fit = perm[:n_val], perm[n_val:]
    best_c, best_acc = cs[0], -1.0
    if len(np.unique(ytr[fit])) >= 2:
        for c in cs:
            clf = LogisticRegression(C=c, max_iter=max_iter)
            clf.fit(xtr[fit], ytr[fit])
            acc = float((clf.predict(xtr[val]) == ytr[val]).mean())
            if acc > best_acc:
                best_c, best_acc = c, acc
    clf = LogisticRegression(C=best_c, max_iter=max_iter).fit(xtr, ytr)
    return {
        "accuracy": float((clf.predict(xte) == yte).mean()),
        "C": float(best_c),
        "val_accuracy": float(best_acc),
    }
