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
