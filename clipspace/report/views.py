"""2-D views of embeddings for the report: PCA for the sphere and Euclidean space, the Poincare
disk for Lorentz (hyperboloid) points.

- ``pca_2d``: centred rows projected on the two leading right singular vectors of
  X - mean(X) (signs fixed so the largest loading of each axis is positive).
- ``poincare``: a point of the hyperboloid of curvature -c, stored by its space part x with time
  part x_t = sqrt(1/c + |x|^2), maps to the Poincare ball of radius 1/sqrt(c) as
  x / (1 + sqrt(c) x_t); scaled by sqrt(c) it lies in the unit ball:
  u = sqrt(c) x / (1 + sqrt(1 + c |x|^2)), |u| = tanh(sqrt(c) d(x, O) / 2) < 1.
- ``lorentz_2d``: tangent vectors at the origin v = log_map0(x), projected on their two leading
  uncentred principal directions (the origin stays the centre), mapped back with exp_map0 in
  H^2 and drawn in the unit Poincare disk.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from clipspace.geometry import lorentz


def _leading_axes(x: np.ndarray, k: int = 2) -> np.ndarray:
    """(k, D) leading right singular vectors of ``x`` (zero-padded when D < k), sign-fixed:
    the eigenvectors of the (D, D) matrix x^T x of largest eigenvalue (cheaper than an SVD of
    the (N, D) rows)."""
    _, vecs = np.linalg.eigh(x.T @ x)  # ascending eigenvalues
    axes = np.zeros((k, x.shape[1]))
    top = vecs[:, ::-1][:, :k].T
    axes[: len(top)] = top
    for row in axes:
        if row.any() and row[np.argmax(np.abs(row))] < 0:
            row *= -1
    return axes


def pca_2d(x: Any) -> np.ndarray:
    """(N, 2) principal-component coordinates of the rows of ``x`` (centred)."""
    a = np.asarray(x, dtype=np.float64)
    centred = a - a.mean(0)
    return centred @ _leading_axes(centred).T


def poincare(x: Any, curv: float = 1.0) -> np.ndarray:
    """Unit-ball Poincare coordinates sqrt(c) x / (1 + sqrt(c) x_t) of Lorentz space parts."""
    a = np.asarray(x, dtype=np.float64)
    sc = np.sqrt(float(curv))
    x_t = np.sqrt(1.0 / curv + (a * a).sum(-1, keepdims=True))
    return sc * a / (1.0 + sc * x_t)


def lorentz_2d(x: Any, curv: float = 1.0) -> np.ndarray:
    """(N, 2) Poincare-disk view of Lorentz points (module docstring)."""
    v = lorentz.log_map0(torch.as_tensor(np.asarray(x, dtype=np.float64)), curv).numpy()
    w = v @ _leading_axes(v).T
    y = lorentz.exp_map0(torch.from_numpy(w), curv).numpy()
    return poincare(y, curv)


def view_2d(image: Any, text: Any, geometry: str, curv: float = 1.0
            ) -> tuple[np.ndarray, np.ndarray, str]:
    """(image 2-D, text 2-D, axis kind) from one joint projection of both modalities: the
    Poincare disk for ``lorentz``, PCA of unit vectors for ``sphere``, PCA otherwise."""
    a, b = np.asarray(image, np.float64), np.asarray(text, np.float64)
    both = np.concatenate([a, b])
    if geometry == "lorentz":
        flat, kind = lorentz_2d(both, curv), "Poincare disk"
    else:
        if geometry == "sphere":
            both = both / np.maximum(np.linalg.norm(both, axis=1, keepdims=True), 1e-12)
        flat, kind = pca_2d(both), "PCA"
    return flat[: len(a)], flat[len(a):], kind


__all__ = ["lorentz_2d", "pca_2d", "poincare", "view_2d"]
