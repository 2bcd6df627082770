"""Gap metrics (L2M, L2I, RMG) against brute-force O(N^2) definitions."""

import numpy as np
import pytest
import torch

from clipspace.analysis.gap import gap_stats, l2i, l2m, mean_difference, rmg


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute(img: np.ndarray, txt: np.ndarray) -> dict[str, float]:
    a, b = _unit(img.astype(np.float64)), _unit(txt.astype(np.float64))
    n = len(a)

    def d(u, v):
        return (1 - u @ v.T) / 2

    m = np.mean([d(a[i : i + 1], b[i : i + 1])[0, 0] for i in range(n)])
    off = ~np.eye(n, dtype=bool)
    d_img = d(a, a)[off].mean()
    d_txt = d(b, b)[off].mean()
    return {
        "l2m": float(np.linalg.norm(a.mean(0) - b.mean(0))),
        "l2i": float(np.mean([np.linalg.norm(a[i] - b[i]) for i in range(n)])),
        "rmg": float(m / (m + (d_img + d_txt) / 2)),
    }


@pytest.mark.parametrize("chunk", [7, 1000])
@pytest.mark.parametrize("shift", [0.0, 2.0])
def test_gap_matches_brute_force(chunk: int, shift: float) -> None:
    rng = np.random.default_rng(0)
    img = rng.normal(size=(83, 16)).astype(np.float32)
    txt = (img + rng.normal(size=img.shape) + shift).astype(np.float32)
    got = gap_stats(img, txt, chunk=chunk)
    want = brute(img, txt)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-5, abs=1e-6), k


def test_gap_accepts_torch_memmap_and_helpers(tmp_path) -> None:
    rng = np.random.default_rng(1)
    img = rng.normal(size=(50, 8)).astype(np.float32)
    txt = rng.normal(size=(50, 8)).astype(np.float32)
    np.save(tmp_path / "i.npy", img)
    mm = np.load(tmp_path / "i.npy", mmap_mode="r")
    ref = brute(img, txt)
    assert rmg(mm, torch.from_numpy(txt)) == pytest.approx(ref["rmg"], rel=1e-5)
    assert l2m(img, txt) == pytest.approx(ref["l2m"], rel=1e-5)
    assert l2i(img, txt) == pytest.approx(ref["l2i"], rel=1e-5)
    md = mean_difference(img, txt).numpy()
    np.testing.assert_allclose(md, _unit(img).mean(0) - _unit(txt).mean(0), atol=1e-6)


def test_gap_identical_modalities_is_zero() -> None:
    x = np.random.default_rng(2).normal(size=(20, 4)).astype(np.float32)
    g = gap_stats(x, x)
    assert g["l2m"] == pytest.approx(0.0, abs=1e-6)
    assert g["rmg"] == pytest.approx(0.0, abs=1e-6)


def test_gap_rejects_mismatched_rows() -> None:
    with pytest.raises(ValueError):
        gap_stats(np.ones((3, 2), np.float32), np.ones((4, 2), np.float32))


def test_root_distances_use_the_geometry() -> None:
    """Distances to the shared [ROOT] in each geometry's metric: on the sphere unit vectors do
    not all have the same root distance (raw norms would be constant)."""
    from clipspace.analysis.gap import root_distances
    from clipspace.geometry import euclidean, lorentz, sphere

    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(50, 8, generator=g) + 2.0, dim=1)
    txt = torch.nn.functional.normalize(torch.randn(50, 8, generator=g) - 2.0, dim=1)
    d = root_distances(img, txt, sphere)
    assert d["image"].std() > 1e-3 and d["text"].std() > 1e-3
    root = sphere.default_root(torch.cat([img, txt]))
    expected = sphere.dist(img, root.expand_as(img)).numpy()
    assert abs(d["image"] - expected).max() < 1e-6
    e = root_distances(img * 3, txt, euclidean)
    assert abs(e["image"] - 3.0).max() < 1e-5  # the origin is the root in Euclidean space
    h = root_distances(img * 3, txt, lorentz, curv=1.0)
    assert abs(h["image"] - lorentz.dist_to_origin(img * 3, 1.0).numpy()).max() < 1e-5


def test_geometric_gap_in_each_geometry() -> None:
    """Euclidean: equals the raw-vector L2M / L2I; identical modalities: no gap anywhere;
    sphere and Lorentz distances agree with the geometry's own pairwise distances."""
    from clipspace.analysis.gap import geometric_gap
    from clipspace.geometry import euclidean, lorentz, sphere

    g = torch.Generator().manual_seed(1)
    img, txt = torch.randn(40, 6, generator=g) + 1.0, torch.randn(40, 6, generator=g)
    e = geometric_gap(img, txt, euclidean)
    raw = gap_stats(img, txt, normalize=False)
    assert e["geodesic_l2m"] == pytest.approx(raw["l2m"], rel=1e-5)
    assert e["geodesic_l2i"] == pytest.approx(raw["l2i"], rel=1e-5)
    spread = torch.cdist(img.double(), img.double()).sum() / (40 * 39)
    assert e["geodesic_img_spread"] == pytest.approx(float(spread), rel=1e-5)
    for geo in (sphere, lorentz, euclidean):
        same = geometric_gap(img, img.clone(), geo, 1.0)
        # (the sphere's acos clamp puts identical points 1.4e-3 apart in float32)
        assert same["geodesic_l2m"] == pytest.approx(0.0, abs=2e-3)
        assert same["geodesic_rmg"] == pytest.approx(0.0, abs=2e-3)
    h = geometric_gap(img * 0.3, txt * 0.3, lorentz, 2.0, max_rows=25)  # subsampled spread
    assert 0 < h["geodesic_rmg"] < 1 and h["geometry"] == "lorentz"


def test_paper_root_distances_match_a_direct_computation() -> None:
    """EuCLIP's roots: on the sphere s (1 - cos) to the normalised mean of all unit embeddings
    (raw scale of the rows ignored); with an origin the geodesic distance to the origin."""
    from clipspace.analysis.gap import paper_root_distances
    from clipspace.geometry import euclidean, lorentz, sphere

    rng = np.random.default_rng(3)
    img = rng.normal(size=(30, 5)) + 1.5
    txt = rng.normal(size=(20, 5)) * 4.0 - 0.5  # another count and scale than the images
    a, b = _unit(img), _unit(txt)
    r = np.concatenate([a, b]).mean(0)
    r /= np.linalg.norm(r)
    got = paper_root_distances(img.astype(np.float32), txt.astype(np.float32), sphere,
                               scale=12.5)
    np.testing.assert_allclose(got["image"], 12.5 * (1 - a @ r), atol=1e-5)
    np.testing.assert_allclose(got["text"], 12.5 * (1 - b @ r), atol=1e-5)
    assert got["text"].shape == (20,)
    e = paper_root_distances(img, txt, euclidean, scale=7.0)  # scale: sphere only
    np.testing.assert_allclose(e["image"], np.linalg.norm(img, axis=1), rtol=1e-5)
    c = 0.5
    h = paper_root_distances(img, txt, lorentz, curv=c)
    want = np.arcsinh(np.sqrt(c) * np.linalg.norm(txt, axis=1)) / np.sqrt(c)
    np.testing.assert_allclose(h["text"], want, rtol=1e-5)
