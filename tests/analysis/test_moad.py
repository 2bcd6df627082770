"""MOAD against a brute-force pairwise implementation."""

import numpy as np
import pytest

from clipspace.analysis.moad import label_similarities, moad


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_s(x, y_labels, other=None):
    a = _unit(x.astype(np.float64))
    b = a if other is None else _unit(other.astype(np.float64))
    cos = a @ b.T
    n = len(a)
    off = ~np.eye(n, dtype=bool)
    same = (y_labels[:, None] == y_labels[None, :]) & off
    cross = (y_labels[:, None] != y_labels[None, :]) & off
    return cos[same].mean(), cos[cross].mean()


@pytest.mark.parametrize("cross_modal", [False, True])
def test_moad_matches_brute_force(cross_modal: bool) -> None:
    rng = np.random.default_rng(0)
    n, d = 120, 12
    digit = rng.integers(0, 10, n)
    colour = rng.integers(0, 7, n)
    scale = rng.integers(0, 2, n)
    x = (rng.normal(size=(n, d)) + 2 * np.eye(d)[digit]).astype(np.float32)
    other = (x + rng.normal(size=(n, d))).astype(np.float32) if cross_modal else None
    got = moad(x, digit, {"colour": colour, "scale": scale}, other=other, chunk=17)
    per = {}
    oi, oc = brute_s(x, digit, other)
    for name, lab in (("colour", colour), ("scale", scale)):
        ai, ac = brute_s(x, lab, other)
        per[name] = (oi - oc) - (ai - ac)
        assert got["attr_intra"][name] == pytest.approx(ai, rel=1e-5, abs=1e-7)
        assert got["per_slot"][name] == pytest.approx(per[name], rel=1e-5, abs=1e-7)
    assert got["moad"] == pytest.approx(np.mean(list(per.values())), rel=1e-5, abs=1e-7)
    assert got["moad"] > 0  # embedding built around the digit: object bias


def test_label_similarities_single_key() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    lab = rng.integers(0, 3, 40)
    (intra, cross), = label_similarities(x, {"y": lab}).values()
    bi, bc = brute_s(x, lab)
    assert intra == pytest.approx(bi, rel=1e-5)
    assert cross == pytest.approx(bc, rel=1e-5)
