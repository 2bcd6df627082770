"""Linear probe on frozen image features: scikit-learn logistic regression, with the inverse
regularisation C chosen on a held-out validation split of the training features, then refit on
all training features."""

from __future__ import annotations

import warnings
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
    tol: float = 1e-4,
) -> dict[str, float]:
    """``{"accuracy", "C", "val_accuracy", "converged"}`` of a logistic-regression probe.

    Features are standardised; C is searched in increasing order with warm starts (each fit
    starts from the previous C's solution, so the weakly regularised fits converge in few
    iterations) and the final fit on all training features starts from the chosen C's fit.
    ``converged`` is False when the final fit hit ``max_iter``.
    """
    from sklearn.exceptions import ConvergenceWarning
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
    best_c, best_acc, best_fit = cs[0], -1.0, None
    if len(np.unique(ytr[fit])) >= 2:
        # one estimator along increasing C, each fit warm-started from the previous solution
        clf = LogisticRegression(C=cs[0], max_iter=max_iter, tol=tol, warm_start=True)
        for c in sorted(cs):
            clf.set_params(C=c)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(xtr[fit], ytr[fit])
            acc = float((clf.predict(xtr[val]) == ytr[val]).mean())
            if acc > best_acc:
                best_c, best_acc = c, acc
                best_fit = (clf.coef_.copy(), clf.intercept_.copy(), clf.classes_.copy())
    final = LogisticRegression(C=best_c, max_iter=max_iter, tol=tol, warm_start=True)
    if best_fit is not None and np.array_equal(best_fit[2], np.unique(ytr)):
        final.coef_, final.intercept_ = best_fit[0], best_fit[1]  # start from the chosen fit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        final.fit(xtr, ytr)
    return {
        "accuracy": float((final.predict(xte) == yte).mean()),
        "C": float(best_c),
        "val_accuracy": float(best_acc),
        "converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught),
    }
