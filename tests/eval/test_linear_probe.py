"""Linear probe: separable features give high accuracy; C comes from the candidate list."""

import numpy as np

from clipspace.eval.linear_probe import linear_probe


def test_linear_probe_separable_vs_random() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    centres = rng.normal(size=(3, 5)) * 4
    x = centres[y] + rng.normal(size=(300, 5))
    good = linear_probe(x[:200], y[:200], x[200:], y[200:], cs=(0.1, 1.0))
    assert good["accuracy"] > 0.9 and good["C"] in (0.1, 1.0)
    noise = rng.normal(size=(300, 5))
    bad = linear_probe(noise[:200], y[:200], noise[200:], y[200:], cs=(0.1, 1.0))
    assert bad["accuracy"] < 0.6


def test_warm_started_search_matches_cold_fits() -> None:
    """The warm-started C path picks the C that independent cold fits pick, and its final
    accuracy equals a cold fit at that C (both converge to the same convex optimum)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 600)
    x = rng.normal(size=(4, 8))[y] * 1.2 + rng.normal(size=(600, 8))
    cs = (0.01, 0.1, 1.0, 10.0)
    res = linear_probe(x[:400], y[:400], x[400:], y[400:], cs=cs, max_iter=2000, tol=1e-8)
    assert res["converged"]
    scaler = StandardScaler().fit(x[:400])
    xtr, xte = scaler.transform(x[:400]), scaler.transform(x[400:])
    perm = np.random.default_rng(0).permutation(400)
    val, fit = perm[:80], perm[80:]
    cold = {c: float((LogisticRegression(C=c, max_iter=2000, tol=1e-8).fit(xtr[fit], y[:400][fit])
                      .predict(xtr[val]) == y[:400][val]).mean()) for c in cs}
    assert res["val_accuracy"] == max(cold.values())
    assert cold[res["C"]] == max(cold.values())
    final = LogisticRegression(C=res["C"], max_iter=2000, tol=1e-8).fit(xtr, y[:400])
    assert abs(res["accuracy"] - float((final.predict(xte) == y[400:]).mean())) <= 0.005
