"""MERU-style traversals toward [ROOT]: the walk, one image and a batch, and the three rules
("keep": best caption kept if its cone holds the point; "mask": best among the cones that hold it;
"best": no cone test)."""

import pytest
import torch

from clipspace.eval.traversal import retrieve, traversal_points, traverse, traverse_batch
from clipspace.geometry import euclidean, lorentz, sphere


def test_traversal_euclidean_goes_from_image_to_root_with_cone_test() -> None:
    img = torch.tensor([4.0, 0.0])
    pts = traversal_points(img, euclidean, steps=5)
    assert torch.allclose(pts[0], img) and torch.allclose(pts[-1], torch.zeros(2))
    captions = ["specific", "generic", "off-axis"]
    cap = torch.tensor([[3.0, 0.0], [1.0, 0.0], [0.0, 3.0]])

    def sim(a, b):
        return -torch.cdist(a, b)

    path = traverse(img, cap, captions, euclidean, sim, steps=9)
    assert path == ["specific", "generic"]
    # the cone test drops a caption whose cone does not contain the point
    cap2 = torch.tensor([[3.0, 0.5], [1.0, 0.0]])
    path2 = traverse(img, cap2, ["tilted", "generic"], euclidean, sim, steps=9)
    assert "generic" in path2
    no_test = traverse(img, cap2, ["tilted", "generic"], euclidean, sim, steps=9, cone_test=False)
    assert no_test[0] == "tilted"


def test_traversal_sphere_toward_root_direction() -> None:
    img = torch.tensor([1.0, 0.0, 0.0])
    root = torch.tensor([0.0, 1.0, 0.0])
    pts = traversal_points(img, sphere, steps=5, root=root)
    assert torch.allclose(pts.norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.allclose(pts[-1], root, atol=1e-5)
    cap = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    path = traverse(img, cap, ["img-like", "root-like"], sphere, lambda a, b: a @ b.T,
                    steps=7, root=root)
    assert path == ["img-like", "root-like"]


def _setup(geometry, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    imgs = torch.randn(7, 6, generator=gen) * 0.5
    # captions along each image's ray toward the origin (so walks meet several), plus noise
    frac = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9]).repeat(7)[:, None]
    caps = torch.cat([imgs.repeat_interleave(5, 0) * frac, torch.randn(5, 6, generator=gen)])
    caps = caps + 0.01 * torch.randn(40, 6, generator=gen)
    if geometry is sphere:
        imgs, caps = sphere.exp_map0(imgs), sphere.exp_map0(caps)
    texts = [f"t{i}" for i in range(40)]

    def sim(a, b):
        return -geometry.pairwise_dist(a, b, 1.0)

    return imgs, caps, texts, sim


def _keep_reference(x, caps, texts, geometry, sim, steps, root):
    """The "keep" rule written out point by point (one ext_angle per pair)."""
    pts = traversal_points(x, geometry, 1.0, steps, root)
    best = sim(pts, caps).argmax(1)
    out = []
    for p, j in zip(pts, best.tolist(), strict=True):
        t = caps[j : j + 1]
        if geometry.HAS_ORIGIN and float(geometry.ext_angle(t, p[None], 1.0)[0]) > float(
                geometry.half_aperture(t, 1.0)[0]):
            continue
        if not out or out[-1] != texts[j]:
            out.append(texts[j])
    return out


@pytest.mark.parametrize("geometry", [lorentz, euclidean, sphere])
def test_keep_rule_equals_the_point_by_point_rule(geometry) -> None:
    imgs, caps, texts, sim = _setup(geometry)
    root = None if geometry.HAS_ORIGIN else geometry.default_root(caps, 1.0)
    want = [_keep_reference(x, caps, texts, geometry, sim, 30, root) for x in imgs]
    got = traverse_batch(imgs, caps, texts, geometry, sim, 1.0, steps=30, rule="keep", batch=3)
    assert got == want
    assert [traverse(x, caps, texts, geometry, sim, 1.0, steps=30, root=root)
            for x in imgs] == want
    assert any(len(p) > 1 for p in got)


@pytest.mark.parametrize("geometry", [lorentz, euclidean, sphere])
def test_batched_points_equal_one_image_points(geometry) -> None:
    imgs, caps, _, _ = _setup(geometry, seed=1)
    root = None if geometry.HAS_ORIGIN else geometry.default_root(caps, 1.0)
    pts = traversal_points(imgs, geometry, 1.0, 12, root)
    assert pts.shape == (7, 12, imgs.shape[1])
    for i, x in enumerate(imgs):
        assert torch.allclose(pts[i], traversal_points(x, geometry, 1.0, 12, root), atol=1e-6)
        assert torch.allclose(pts[i, 0], x.float(), atol=1e-4)


@pytest.mark.parametrize("geometry", [lorentz, euclidean])
def test_mask_rule_is_the_best_caption_whose_cone_contains_the_point(geometry) -> None:
    imgs, caps, _, sim = _setup(geometry, seed=2)
    pts = traversal_points(imgs, geometry, 1.0, 20).reshape(-1, 6)
    idx = retrieve(pts, caps, geometry, sim, 1.0, rule="mask")
    scores = sim(pts, caps)
    found = 0
    for p in range(pts.shape[0]):
        inside = [j for j in range(caps.shape[0]) if float(geometry.ext_angle(
            caps[j : j + 1], pts[p : p + 1], 1.0)[0]) <= float(geometry.half_aperture(
                caps[j : j + 1], 1.0)[0])]
        if not inside:
            assert int(idx[p]) == -1
            continue
        found += 1
        assert int(idx[p]) == max(inside, key=lambda j: float(scores[p, j]))
    assert found > 10


def test_mask_rule_drops_repeats_anywhere() -> None:
    imgs, caps, texts, sim = _setup(lorentz, seed=3)
    for path in traverse_batch(imgs, caps, texts, lorentz, sim, 1.0, steps=40, rule="mask"):
        assert len(path) == len(set(path))


def test_unknown_rule_is_refused() -> None:
    imgs, caps, _, sim = _setup(lorentz)
    with pytest.raises(ValueError, match="unknown traversal rule"):
        retrieve(imgs, caps, lorentz, sim, 1.0, rule="nearest")


def test_best_rule_ignores_cones() -> None:
    imgs, caps, _, sim = _setup(lorentz, seed=4)
    pts = traversal_points(imgs, lorentz, 1.0, 10).reshape(-1, 6)
    assert torch.equal(retrieve(pts, caps, lorentz, sim, 1.0, rule="best"),
                       sim(pts, caps).argmax(1))
