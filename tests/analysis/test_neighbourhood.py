"""Normalised Kendall distance and the neighbourhood test."""

import itertools

import numpy as np
import pytest

from clipspace.analysis.neighbourhood import class_similarity, kendall_distance, neighbourhood_test


def test_kendall_known_cases() -> None:
    assert kendall_distance([1, 2, 3, 4], [10, 20, 30, 40]) == 0.0
    assert kendall_distance([1, 2, 3, 4], [4, 3, 2, 1]) == 1.0
    # one adjacent swap among 4 items: 1 discordant pair of 6
    assert kendall_distance([1, 2, 3, 4], [2, 1, 3, 4]) == pytest.approx(1 / 6)
    # [1,2,3] vs [3,1,2]: pairs (1,2) disc, (1,3) disc, (2,3) conc -> 2/3
    assert kendall_distance([1, 2, 3], [3, 1, 2]) == pytest.approx(2 / 3)


def test_kendall_matches_pair_count() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=9), rng.normal(size=9)
    disc = sum((a[i] - a[j]) * (b[i] - b[j]) < 0 for i, j in itertools.combinations(range(9), 2))
    assert kendall_distance(a, b) == pytest.approx(disc / 36)


def test_neighbourhood_same_and_different() -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(6), 20)
    centres = rng.normal(size=(6, 8)) * 3
    img = centres[labels] + rng.normal(size=(120, 8)) * 0.1
    same = neighbourhood_test(img, img * 2.0, labels)
    assert same["kendall"] == 0.0
    other = neighbourhood_test(img, rng.normal(size=(120, 8)), labels)
    assert 0.0 < other["kendall"] <= 1.0
    assert len(other["per_class"]) == 6
    sim = class_similarity(img, labels)
    m = np.stack([img[labels == c].mean(0) for c in range(6)])  # normalised-mean brute force
    u = img / np.linalg.norm(img, axis=1, keepdims=True)
    m = np.stack([u[labels == c].mean(0) for c in range(6)])
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    np.testing.assert_allclose(sim, m @ m.T, atol=1e-6)
