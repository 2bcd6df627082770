"""Morpho-MNIST perturbations: exactness against skimage/scipy and fidelity ratios."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import disk
from skimage.morphology import medial_axis as sk_medial_axis

from clipspace.data import morpho as M
from clipspace.data.mnist import load_mnist


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    images, _ = load_mnist("embedded")
    return images[np.linspace(0, len(images) - 1, 60).astype(int)]  # 6 of each class


def _f(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32)


def test_medial_axis_matches_skimage(digits: np.ndarray) -> None:
    for img in digits[:5]:
        m = M.Morphology.from_image(img)
        skel, dist = sk_medial_axis(m.binary, return_distance=True, rng=0)
        np.testing.assert_array_equal(m.skeleton, skel)
        np.testing.assert_allclose(m.distance, dist)


def test_thin_thicken_equal_erosion_dilation_by_disk(digits: np.ndarray) -> None:
    m = M.Morphology.from_image(digits[7])
    r = m.stroke_radius(0.7)
    assert r == int(0.7 * 4 * m.mean_thickness / 2) and r >= 1
    np.testing.assert_array_equal(M.thin(m), ndi.binary_erosion(m.binary, disk(r)))
    np.testing.assert_array_equal(M.thicken(m), ndi.binary_dilation(m.binary, disk(r)))


def test_resampling_preserves_constants_and_shapes() -> None:
    up, down = M.upsample_matrix(), M.downsample_matrix()
    assert up.shape == (112, 28) and down.shape == (28, 112)
    np.testing.assert_allclose(up.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(down.sum(axis=1), 1.0, atol=1e-4)
    hires = np.zeros((2, 112, 112), np.float32)
    hires[:, 40:72, 50:62] = 1.0
    small = M.downscale_small(hires, np.array([[3, 4], [4, 3]]))
    assert small.shape == (2, 28, 28) and small.dtype == np.uint8
    assert small[0, :3].max() == 0 and small[0, 24:].max() == 0 and small[0, :, :4].max() == 0


def test_measure_on_synthetic_bars() -> None:
    bar = np.zeros((28, 28), np.uint8)
    bar[4:24, 12:16] = 255  # 4 px wide, 20 px tall, upright
    m = M.measure(bar)
    assert m.thickness == pytest.approx(4.0, rel=0.2)
    assert m.area == pytest.approx(80.0, rel=0.1)
    assert m.length == pytest.approx(20.0 - 4.0, abs=5.0)
    assert abs(m.slant) < 0.05
    leaning = np.zeros((28, 28), np.uint8)
    for row in range(4, 24):  # top to the right
        col = 16 - (row - 4) // 3
        leaning[row, col : col + 3] = 255
    assert M.measure(leaning).slant > 0.2
    assert M.measure(leaning[:, ::-1].copy()).slant < -0.2


def test_perturbations_only_remove_or_add_ink(digits: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    m = M.Morphology.from_image(digits[30])
    frac = M.fracture(m, m.binary, rng)
    assert not (frac & ~m.binary).any() and frac.sum() < m.binary.sum()
    sw = M.swell(m, m.binary, rng)
    assert sw.shape == m.binary.shape and 0 <= sw.min() and sw.max() <= 1
    assert sw.sum() > m.binary.sum()


def test_fidelity_ratios(digits: np.ndarray) -> None:
    """Morpho-MNIST ratios on the embedded digits (within 10%), measured with our measure."""
    rng = np.random.default_rng(0)
    ratios: dict[str, list[float]] = {k: [] for k in ("thin", "thick", "swell", "area", "len")}
    for img in digits:
        m = M.Morphology.from_image(img)
        plain = M.measure(M.downscale(_f(m.binary)))
        ratios["thin"].append(M.measure(M.downscale(_f(M.thin(m)))).thickness / plain.thickness)
        ratios["thick"].append(
            M.measure(M.downscale(_f(M.thicken(m)))).thickness / plain.thickness
        )
        swollen = M.measure(M.downscale(M.swell(m, m.binary, rng)))
        ratios["swell"].append(swollen.thickness / plain.thickness)
        broken = M.measure(M.downscale(_f(M.fracture(m, m.binary, rng))))
        ratios["area"].append(broken.area / plain.area)
        ratios["len"].append(broken.length / plain.length)
    target = {"thin": 0.54, "thick": 1.65, "swell": 1.24, "area": 0.85, "len": 0.81}
    got = {k: float(np.mean(v)) for k, v in ratios.items()}
    for key, want in target.items():
        assert abs(got[key] / want - 1.0) <= 0.10, (key, got[key], want)


def test_blank_and_tiny_digits_do_not_crash() -> None:
    from clipspace.data.mad_generate import digit_variants

    blank = np.zeros((28, 28), np.uint8)
    out = digit_variants(blank, np.random.default_rng(0))
    assert out.shape == (24, 28, 28) and out.max() == 0
    dot = blank.copy()
    dot[13:15, 13:15] = 255
    out = digit_variants(dot, np.random.default_rng(0))
    assert out.shape == (24, 28, 28) and np.isfinite(out).all()
    assert M.measure(blank) == M.Measures(0.0, 0.0, 0.0, 0.0)
