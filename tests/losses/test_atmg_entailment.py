"""ATMG angle loss, centroid regulariser and entailment loss: optimum behaviour, both geometries."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clipspace.geometry import get_geometry
from clipspace.losses import angle_logits, angle_loss, centroid_loss, entailment_loss

GEOS = ["euclidean", "lorentz"]


def _texts(n: int = 5, d: int = 6, radius: float = 0.8) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return F.normalize(torch.randn(n, d, generator=g), dim=-1) * radius


@pytest.mark.parametrize("geo", GEOS)
def test_angle_loss_prefers_images_beyond_texts(geo: str) -> None:
    g = get_geometry(geo)
    txt = _texts()
    beyond = txt * 2.0  # on the ray O->t beyond t: ext(t, v) = 0, ext(v, t) = pi
    between = txt * 0.5  # between O and t: ext(t, v) = pi, ext(v, t) = 0
    lb = angle_loss(beyond, txt, g, 1.0, 10.0)
    lm = angle_loss(between, txt, g, 1.0, 10.0)
    assert lb < lm
    i2t, t2i = angle_logits(beyond, txt, g, 1.0)
    assert torch.allclose(i2t.diagonal(), torch.full((5,), math.pi), atol=1e-2)
    assert torch.allclose(t2i.diagonal(), torch.zeros(5), atol=1e-2)
    i2t, t2i = angle_logits(between, txt, g, 1.0)
    assert torch.allclose(i2t.diagonal(), torch.zeros(5), atol=1e-2)
    assert torch.allclose(t2i.diagonal(), torch.full((5,), -math.pi), atol=1e-2)


@pytest.mark.parametrize("geo", GEOS)
def test_angle_loss_decreases_along_path_to_optimum(geo: str) -> None:
    g = get_geometry(geo)
    txt = _texts()
    wrong = txt.roll(1, dims=0) * 2.0
    right = txt * 2.0
    losses = [angle_loss(a * right + (1 - a) * wrong, txt, g, 1.0, 10.0).item()
              for a in (0.0, 0.5, 1.0)]
    assert losses[0] > losses[1] > losses[2], losses


def _at_radius(direction: torch.Tensor, r: float, geo: str, c: float) -> torch.Tensor:
    """Point at distance r from the origin along ``direction``."""
    u = F.normalize(direction, dim=-1)
    return get_geometry(geo).exp_map0(u * r, c) if geo == "lorentz" else u * r


@pytest.mark.parametrize("geo", GEOS)
@pytest.mark.parametrize("c", [0.1, 1.0])
def test_centroid_zero_at_target_radii(geo: str, c: float) -> None:
    g = get_geometry(geo)
    d = torch.randn(6)
    img = _at_radius(d, 2.0, geo, c).expand(4, 6)
    txt = _at_radius(-d, 0.5, geo, c).expand(3, 6)
    assert centroid_loss(img, txt, g, c, p=2.0, q=0.5).item() == pytest.approx(0.0, abs=1e-4)
    off = centroid_loss(img * 0.5, txt, g, c, p=2.0, q=0.5).item()
    assert off > 0.1
    # closer to the targets -> lower
    assert centroid_loss(img * 0.8, txt, g, c).item() < off


def test_centroid_euclidean_is_norm_of_mean() -> None:
    g = get_geometry("euclidean")
    img = torch.tensor([[3.0, 0.0], [1.0, 0.0]])  # mean (2, 0): |.| = 2
    txt = torch.tensor([[0.0, 1.0], [0.0, -1.0]])  # mean 0: |0 - 0.5| = 0.5
    assert centroid_loss(img, txt, g, 1.0, p=2.0, q=0.5).item() == pytest.approx(0.5, abs=1e-5)


@pytest.mark.parametrize("geo", GEOS)
def test_entailment_zero_inside_cone_positive_outside(geo: str) -> None:
    g = get_geometry(geo)
    txt = _texts(radius=1.0)
    inside = txt * 1.5  # on the text's ray beyond the apex: ext = 0 < aperture
    assert entailment_loss(txt, inside, g, 1.0).item() == pytest.approx(0.0, abs=1e-4)
    outside = txt.roll(1, dims=0) * 1.5
    lo = entailment_loss(txt, outside, g, 1.0).item()
    assert lo > 0.1
    # moving from outside toward inside lowers the loss
    mid = 0.5 * inside + 0.5 * outside
    assert entailment_loss(txt, mid, g, 1.0).item() < lo


def test_entailment_euclidean_matches_hand_value() -> None:
    g = get_geometry("euclidean")
    txt = torch.tensor([[1.0, 0.0]])
    img = torch.tensor([[1.0, 1.0]])  # ext angle at t = pi/2; aperture asin(0.1)
    expected = math.pi / 2 - math.asin(0.1)
    assert entailment_loss(txt, img, g, 1.0).item() == pytest.approx(expected, abs=1e-4)
    assert entailment_loss(img, txt, g, 1.0).item() != pytest.approx(expected, abs=1e-3)
