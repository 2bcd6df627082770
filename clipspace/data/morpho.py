"""Morpho-MNIST style morphology and perturbations, written for speed (docs/reference.md section 5).

Castro et al., "Morpho-MNIST" (2019): a 28x28 digit is upsampled x4 (cubic), binarised at half
range, and described by its medial-axis skeleton and distance map. The perturbations act on the
binary image at that scale:

* thinning / thickening: erosion / dilation by a disk of radius ``int(amount * scale * t / 2)``
  (``t`` = mean thickness in 28-px units). With the Euclidean distance maps these are exact
  thresholds: erosion keeps ``dist_fg > r``, dilation keeps ``dist_bg <= r``.
* swelling: centre ``c`` on the skeleton, ``R = radius * sqrt(t) / 2 * scale``; an output pixel
  ``x`` with ``|x - c| < R`` samples the source at ``c + (x - c) (|x - c| / R)^(strength - 1)``.
* fracture: ``num`` cuts perpendicular to the local stroke direction at skeleton points away
  from tips and forks; each cut is a line of half-length ``dist(c) + 0.5 * scale`` swept by a
  disk brush of radius ``ceil((1.5 * scale - 1) / 2)`` (= 3 at scale 4).

``Morphology`` is computed once per digit and shared by all its variants (the skeleton is the
expensive part). Resampling (up, down, small) are separable linear operators precomputed as
matrices, so a batch of images is resampled by two matrix products.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy import ndimage as ndi

SCALE = 4
THRESHOLD = 0.5
SMALL_SIZE = 21  # 28 * 0.75


# ---- resampling operators ------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _resample_matrix(n_in: int, n_out: int, sigma: float, smooth_after: bool) -> np.ndarray:
    """(n_out, n_in) matrix of 1-D cubic-spline resampling plus a Gaussian (pyramid style).

    Output sample ``o`` reads the input at ``(o + 0.5) * n_in / n_out - 0.5`` (pixel centres).
    ``smooth_after`` applies the Gaussian on the output grid (pyramid_expand) instead of on the
    input grid before sampling (pyramid_reduce's anti-aliasing). Both ops are linear, so the
    response to each basis vector is one column of the matrix; 2-D resampling is ``A X A^T``.
    """
    coords = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    mat = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_in):
        e = np.zeros(n_in)
        e[i] = 1.0
        if sigma > 0 and not smooth_after:
            e = ndi.gaussian_filter1d(e, sigma, mode="reflect")
        col = ndi.map_coordinates(e, coords[None], order=3, mode="nearest")
        if sigma > 0 and smooth_after:
            col = ndi.gaussian_filter1d(col, sigma, mode="reflect")
        mat[:, i] = col
    return mat.astype(np.float32)


def upsample_matrix(scale: int = SCALE) -> np.ndarray:
    """(28*scale, 28) cubic upsampling followed by Gaussian sigma = 2*scale/6 (pyramid_expand)."""
    return _resample_matrix(28, 28 * scale, 2 * scale / 6, True)


def downsample_matrix(scale: int = SCALE, size: int = 28) -> np.ndarray:
    """(size, 28*scale) Gaussian anti-aliasing (sigma = 2*factor/6) then cubic sampling."""
    n_in = 28 * scale
    return _resample_matrix(n_in, size, 2 * (n_in / size) / 6, False)


def resample(images: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Apply ``mat`` to both axes of a (..., H, W) float batch: ``mat @ X @ mat.T``."""
    return np.matmul(np.matmul(mat, images.astype(np.float32, copy=False)), mat.T)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)


def downscale(hires: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """(..., 28*scale, 28*scale) float in [0, 1] -> (..., 28, 28) uint8 (cubic)."""
    return to_uint8(resample(hires, downsample_matrix(scale)))


def downscale_small(hires: np.ndarray, offsets: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """Rescale by 0.75 (to 21x21) and paste into an empty 28x28 canvas at ``offsets`` (B, 2)."""
    small = to_uint8(resample(hires, downsample_matrix(scale, SMALL_SIZE)))
    small = small.reshape(-1, SMALL_SIZE, SMALL_SIZE)
    out = np.zeros((small.shape[0], 28, 28), dtype=np.uint8)
    for k, (dy, dx) in enumerate(np.asarray(offsets).reshape(-1, 2)):
        out[k, dy : dy + SMALL_SIZE, dx : dx + SMALL_SIZE] = small[k]
    return out.reshape(*hires.shape[:-2], 28, 28)


# ---- skeleton ------------------------------------------------------------------------------------

_EIGHT = np.ones((3, 3), dtype=bool)
_POW2 = (2 ** np.arange(9)).reshape(3, 3)  # pixel k of the 3x3 window -> bit k (row-major)


def _pattern(index: int) -> np.ndarray:
    return ((index >> np.arange(9)) & 1).astype(bool).reshape(3, 3)


@functools.lru_cache(maxsize=1)
def _medial_tables() -> tuple[np.ndarray, np.ndarray]:
    """skimage's medial-axis lookup tables (keep table, cornerness), built once, not per call."""
    keep = np.zeros(512, dtype=np.uint8)
    corner = np.zeros(512, dtype=np.int64)
    for index in range(512):
        pat = _pattern(index)
        corner[index] = 9 - pat.sum()
        if not pat[1, 1]:
            continue
        without = pat.copy()
        without[1, 1] = False
        changes = ndi.label(pat, _EIGHT)[1] != ndi.label(without, _EIGHT)[1]
        keep[index] = changes or pat.sum() < 3
    return keep, corner


@functools.lru_cache(maxsize=1)
def _crossing_table() -> np.ndarray:
    """Crossing number (0->1 transitions around the 8-neighbourhood) of each 3x3 pattern."""
    ring = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]
    table = np.zeros(512, dtype=np.int64)
    for index in range(512):
        pat = _pattern(index)
        vals = [pat[r] for r in ring]
        table[index] = sum(1 for a, b in zip(vals, vals[1:] + vals[:1]) if not a and b)
    return table


def _neighbour_index(binary: np.ndarray) -> np.ndarray:
    """Per pixel, the 9-bit index of its 3x3 neighbourhood (bit k = pixel k, row-major)."""
    return ndi.correlate(binary.astype(np.int64), _POW2, mode="constant", cval=0)


def medial_axis(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Medial-axis skeleton and Euclidean distance map of a binary image.

    Same algorithm and output as ``skimage.morphology.medial_axis(binary, rng=0)`` but with its
    lookup tables cached (skimage rebuilds them with 1,024 labelings per call, ~25 ms).
    """
    binary = np.asarray(binary, dtype=bool)
    distance = ndi.distance_transform_edt(binary)
    try:
        from skimage.morphology._skeletonize import _skeletonize_loop
    except ImportError:  # private helper moved: fall back to the public (slower) function
        from skimage.morphology import medial_axis as sk_medial_axis

        return sk_medial_axis(binary, rng=0), distance
    keep, corner = _medial_tables()
    corner_score = corner[_neighbour_index(binary)]
    ii, jj = np.nonzero(binary)
    dist = distance[ii, jj]
    tiebreaker = np.random.default_rng(0).permutation(np.arange(ii.size))
    order = np.lexsort((tiebreaker, corner_score[ii, jj], dist)).astype(np.int32)
    result = np.ascontiguousarray(binary, dtype=np.uint8)
    _skeletonize_loop(
        result,
        np.ascontiguousarray(ii, dtype=np.intp),
        np.ascontiguousarray(jj, dtype=np.intp),
        np.ascontiguousarray(order),
        keep,
    )
    return result.astype(bool), distance


# ---- morphology ----------------------------------------------------------------------------------


def _as_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] or float [0, 1] image (RGB reduced by max over channels) -> float32."""
    image = np.asarray(image)
    if image.ndim == 3:
        image = image.max(axis=-1)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32)


@dataclass
class Morphology:
    """A digit at ``scale``: binary image, skeleton and distance maps (computed once)."""

    binary: np.ndarray  # (28s, 28s) bool
    skeleton: np.ndarray  # (28s, 28s) bool
    distance: np.ndarray  # EDT of the foreground (distance to the nearest background pixel)
    scale: int = SCALE
    _bg_distance: np.ndarray | None = field(default=None, repr=False)
    _candidates: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_image(cls, image: np.ndarray, scale: int = SCALE) -> Morphology:
        """Upsample a 28x28 image x``scale`` (cubic) and binarise at half range."""
        hires = resample(_as_unit_float(image), upsample_matrix(scale))
        return cls.from_binary(hires >= THRESHOLD, scale)

    @classmethod
    def from_binary(cls, binary: np.ndarray, scale: int = SCALE) -> Morphology:
        skeleton, distance = medial_axis(binary)
        return cls(np.asarray(binary, dtype=bool), skeleton, distance, scale)

    @property
    def mean_thickness(self) -> float:
        """2 * mean distance on the skeleton, in 28-px units."""
        if not self.skeleton.any():
            return 0.0
        return float(2.0 * self.distance[self.skeleton].mean() / self.scale)

    @property
    def area(self) -> float:
        """Foreground area in 28-px units (pixels / scale^2)."""
        return float(self.binary.sum() / self.scale**2)

    @property
    def length(self) -> float:
        """Stroke length: skeleton pixel count / scale."""
        return float(self.skeleton.sum() / self.scale)

    @property
    def slant(self) -> float:
        """Slant angle (radians, > 0 leaning right): arctan(-cov(x, y) / var(y)) of the ink."""
        ii, jj = np.nonzero(self.binary)
        if ii.size < 2:
            return 0.0
        y = ii - ii.mean()
        x = jj - jj.mean()
        var_y = float((y * y).mean())
        return float(math.atan(-float((x * y).mean()) / var_y)) if var_y > 0 else 0.0

    @property
    def bg_distance(self) -> np.ndarray:
        """EDT of the background (distance to the nearest foreground pixel), cached."""
        if self._bg_distance is None:
            self._bg_distance = ndi.distance_transform_edt(~self.binary)
        return self._bg_distance

    def stroke_radius(self, amount: float) -> int:
        """Erosion/dilation disk radius int(amount * scale * mean_thickness / 2)."""
        return int(amount * self.scale * self.mean_thickness / 2.0)

    def fracture_candidates(self, margin: float = 2.0) -> np.ndarray:
        """(K, 2) skeleton points farther than ``margin * scale`` px from any tip or fork."""
        if self._candidates is None:
            skel = self.skeleton
            pts = np.argwhere(skel)
            if pts.size == 0:
                self._candidates = pts
                return pts
            idx = _neighbour_index(skel)
            crossings = _crossing_table()[idx]
            ones = _EIGHT.astype(np.int64)
            neighbours = ndi.convolve(skel.astype(np.int64), ones, mode="constant") - skel
            special = skel & ((neighbours <= 1) | (crossings >= 3))
            if special.any():
                near = ndi.distance_transform_edt(~special) <= margin * self.scale
                good = np.argwhere(skel & ~near)
            else:
                good = pts
            self._candidates = good if len(good) else pts
        return self._candidates


class Measures(NamedTuple):
    thickness: float
    area: float
    length: float
    slant: float


def measure(image: np.ndarray, scale: int = SCALE) -> Measures:
    """Thickness, area, length (28-px units) and slant of a 28x28 image, measured at ``scale``."""
    m = Morphology.from_image(image, scale)
    return Measures(m.mean_thickness, m.area, m.length, m.slant)


# ---- perturbations -------------------------------------------------------------------------------


def thin(m: Morphology, amount: float = 0.7) -> np.ndarray:
    """Erosion by disk(r), r = int(amount * scale * t / 2): exactly ``distance > r``."""
    r = m.stroke_radius(amount)
    return m.distance > r if r > 0 else m.binary.copy()


def thicken(m: Morphology, amount: float = 0.7) -> np.ndarray:
    """Dilation by disk(r), r = int(amount * scale * t / 2): exactly ``bg_distance <= r``."""
    r = m.stroke_radius(amount)
    return m.bg_distance <= r if r > 0 else m.binary.copy()


@functools.lru_cache(maxsize=8)
def _disk_offsets(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    inside = dy**2 + dx**2 <= radius**2
    return np.stack([dy[inside], dx[inside]], axis=1)


def _stroke_angle(skeleton: np.ndarray, centre: np.ndarray, window: int) -> float:
    """Local stroke direction (radians, in (y, x) axes): principal axis of nearby skeleton."""
    i, j = int(centre[0]), int(centre[1])
    i0, j0 = max(i - window, 0), max(j - window, 0)
    sub = np.argwhere(skeleton[i0 : i + window + 1, j0 : j + window + 1])
    if len(sub) < 2:
        return 0.0
    d = sub + np.array([i0 - i, j0 - j])
    cov = d.T @ d / len(d)
    evals, evecs = np.linalg.eigh(cov.astype(np.float64))
    v = evecs[:, -1]
    return float(math.atan2(v[0], v[1]))


def fracture(
    m: Morphology,
    binary: np.ndarray,
    rng: np.random.Generator,
    num: int = 3,
    thickness: float = 1.5,
    extra: float = 0.0,
) -> np.ndarray:
    """Cut ``binary`` ``num`` times across the stroke at skeleton points of ``m``.

    Cut half-length ``dist(c) + 0.5 * scale + extra`` (``extra`` = dilation radius when cutting a
    thickened stroke); brush radius ``ceil((thickness * scale - 1) / 2)``.
    """
    out = binary.copy()
    cands = m.fracture_candidates()
    if len(cands) == 0:
        return out
    brush = _disk_offsets(int(math.ceil((thickness * m.scale - 1) / 2)))
    picks = cands[rng.choice(len(cands), size=min(num, len(cands)), replace=False)]
    h, w = out.shape
    flat = out.reshape(-1)  # a view: writes go to ``out``
    for c in picks:
        angle = _stroke_angle(m.skeleton, c, 2 * m.scale)
        normal = np.array([math.cos(angle), -math.sin(angle)])  # perpendicular in (y, x)
        half = float(m.distance[c[0], c[1]]) + 0.5 * m.scale + extra
        steps = np.arange(-math.ceil(half), math.ceil(half) + 1, 0.5)
        steps = steps[np.abs(steps) <= half]
        line = np.rint(c[None, :] + steps[:, None] * normal[None, :]).astype(np.int64)
        ii = (line[:, 0:1] + brush[None, :, 0]).ravel()
        jj = (line[:, 1:2] + brush[None, :, 1]).ravel()
        ok = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
        flat[ii[ok] * w + jj[ok]] = False
    return out


def swell(
    m: Morphology,
    image: np.ndarray,
    rng: np.random.Generator,
    strength: float = 3.0,
    radius: float = 7.0,
) -> np.ndarray:
    """Radial power warp around a random skeleton point of ``m`` (float output in [0, 1]).

    ``R = radius * sqrt(t) / 2 * scale``; inside ``R`` the pixel ``x`` reads the source at
    ``c + (x - c) (|x - c| / R)^(strength - 1)`` (bilinear); only the window around ``c`` is
    resampled.
    """
    out = np.asarray(image, dtype=np.float32).copy()
    pts = np.argwhere(m.skeleton)
    if len(pts) == 0:
        return out
    c = pts[rng.integers(len(pts))].astype(np.float64)
    big_r = radius * math.sqrt(max(m.mean_thickness, 0.0)) / 2.0 * m.scale
    if big_r <= 0:
        return out
    h, w = out.shape
    i0, i1 = max(int(c[0] - big_r), 0), min(int(math.ceil(c[0] + big_r)) + 1, h)
    j0, j1 = max(int(c[1] - big_r), 0), min(int(math.ceil(c[1] + big_r)) + 1, w)
    yy, xx = np.mgrid[i0:i1, j0:j1].astype(np.float64)
    dy, dx = yy - c[0], xx - c[1]
    dist = np.hypot(dy, dx)
    inside = dist < big_r
    weight = np.where(inside, (dist / big_r) ** (strength - 1.0), 1.0)
    src = np.stack([c[0] + weight * dy, c[1] + weight * dx])
    warped = ndi.map_coordinates(out, src, order=1, mode="constant", cval=0.0)
    window = out[i0:i1, j0:j1]
    window[inside] = warped[inside]
    return out
