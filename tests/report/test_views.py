"""2-D views: PCA against numpy's SVD, the Poincare map against its formula and the distance
to the origin, the Lorentz view inside the unit disk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipspace.geometry import lorentz
from clipspace.report.views import lorentz_2d, pca_2d, poincare, view_2d


def test_pca_matches_numpy_svd():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)) * np.array([5.0, 3.0, 1.0, 0.5, 0.1]) + 7.0
    got = pca_2d(x)
    u, s, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
    want = u[:, :2] * s[:2]
    for j in range(2):  # each axis up to its sign
        sign = np.sign(got[:, j] @ want[:, j])
        np.testing.assert_allclose(got[:, j], sign * want[:, j], atol=1e-9)
    assert abs(got[:, 0].var()) > abs(got[:, 1].var())  # leading axis first


@pytest.mark.parametrize("curv", [0.1, 1.0, 4.0])
def test_poincare_formula_inside_disk_and_radius_tanh(curv):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3)) * 3.0
    u = poincare(x, curv)
    xt = lorentz.time_part(torch.from_numpy(x), curv).numpy()[:, None]
    np.testing.assert_allclose(u, np.sqrt(curv) * x / (1 + np.sqrt(curv) * xt), rtol=1e-12)
    radius = np.linalg.norm(u, axis=1)
    assert radius.max() < 1.0
    d = lorentz.dist_to_origin(torch.from_numpy(x), curv).numpy()
    np.testing.assert_allclose(radius, np.tanh(np.sqrt(curv) * d / 2), rtol=1e-9)


def test_lorentz_view_keeps_radius_of_planar_points_and_stays_in_disk():
    rng = np.random.default_rng(2)
    planar = rng.normal(size=(30, 2)) * 2.0
    # a 2-D cloud is only rotated / reflected: every radius is the Poincare radius
    np.testing.assert_allclose(np.linalg.norm(lorentz_2d(planar, 2.0), axis=1),
                               np.linalg.norm(poincare(planar, 2.0), axis=1), rtol=1e-9)
    big = rng.normal(size=(40, 16)) * 50.0
    assert np.linalg.norm(lorentz_2d(big, 1.0), axis=1).max() < 1.0


def test_view_2d_joint_projection_per_geometry():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(10, 4)), rng.normal(size=(12, 4))
    img, txt, kind = view_2d(a, b, "lorentz", 1.0)
    assert kind == "Poincare disk" and img.shape == (10, 2) and txt.shape == (12, 2)
    np.testing.assert_allclose(np.concatenate([img, txt]),
                               lorentz_2d(np.concatenate([a, b]), 1.0))
    img, txt, kind = view_2d(a * 3, b * 3, "sphere")  # scale-free: unit vectors first
    img1, _, _ = view_2d(a, b, "sphere")
    assert kind == "PCA"
    np.testing.assert_allclose(img, img1, atol=1e-9)
    img, _, _ = view_2d(a, b, "euclidean")
    np.testing.assert_allclose(img, pca_2d(np.concatenate([a, b]))[:10])
