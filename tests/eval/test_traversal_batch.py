"""Batched traversals: rule "keep" equals eval.traversal.traverse; rule "mask" retrieves the best
caption among those whose cone contains the point."""

from __future__ import annotations

import pytest
import torch

from clipspace.eval.traversal import traversal_points, traverse
from clipspace.eval.traversal_batch import batch_points, retrieve, traverse_batch
from clipspace.geometry import euclidean, lorentz, sphere


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


@pytest.mark.parametrize("geometry", [lorentz, euclidean, sphere])
def test_keep_rule_reproduces_traverse(geometry) -> None:
    imgs, caps, texts, sim = _setup(geometry)
    root = None if geometry.HAS_ORIGIN else geometry.default_root(caps, 1.0)
    want = [traverse(x, caps, texts, geometry, sim, 1.0, steps=30, root=root) for x in imgs]
    got = traverse_batch(imgs, caps, texts, geometry, sim, 1.0, steps=30, rule="keep", batch=3)
    assert got == want
    assert any(len(p) > 1 for p in got)


@pytest.mark.parametrize("geometry", [lorentz, euclidean, sphere])
def test_batch_points_match_traversal_points(geometry) -> None:
    imgs, caps, _, _ = _setup(geometry, seed=1)
    root = None if geometry.HAS_ORIGIN else geometry.default_root(caps, 1.0)
    pts = batch_points(imgs, geometry, 1.0, 12, root)
    for i, x in enumerate(imgs):
        assert torch.allclose(pts[i], traversal_points(x, geometry, 1.0, 12, root), atol=1e-5)


@pytest.mark.parametrize("geometry", [lorentz, euclidean])
def test_mask_rule_is_the_best_caption_whose_cone_contains_the_point(geometry) -> None:
    imgs, caps, _, sim = _setup(geometry, seed=2)
    pts = batch_points(imgs, geometry, 1.0, 20).reshape(-1, 6)
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
