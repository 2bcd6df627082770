"""Objective: keys per configuration, similarity, logit scale, errors."""

from __future__ import annotations

import warnings

import pytest
import torch

from clipspace.geometry import get_geometry
from clipspace.losses import (
    Objective,
    angle_loss,
    centroid_loss,
    entailment_loss,
    infonce,
    pairwise_logits,
    siglip_initial_bias,
)
from tests.helpers.losses import RANK_CASES


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return 0.5 * torch.randn(4, 6, generator=g), 0.5 * torch.randn(4, 6, generator=g)


@pytest.mark.parametrize(
    ("kwargs", "keys"),
    [
        ({"geometry": "sphere"}, {"loss/contrastive"}),
        ({"geometry": "sphere", "contrastive": "siglip"}, {"loss/contrastive"}),
        (
            {"geometry": "lorentz", "logit": "neg_dist", "entail_weight": 0.2},
            {"loss/contrastive", "loss/entailment"},
        ),
        (
            {"geometry": "lorentz", "contrastive": "angle", "centroid_weight": 0.5},
            {"loss/contrastive", "loss/centroid"},
        ),
        ({"geometry": "euclidean", "contrastive": "none", "entail_weight": 1.0},
         {"loss/entailment"}),
    ],
)
def test_keys_per_configuration(kwargs: dict, keys: set[str]) -> None:
    obj = Objective(**kwargs)
    img, txt = _batch()
    out = obj(img.requires_grad_(), txt, 1.0)
    assert set(out) == keys | {"loss", "logit_scale"}
    assert not out["logit_scale"].requires_grad
    assert out["logit_scale"].dtype == torch.float32
    out["loss"].backward()
    assert torch.isfinite(img.grad).all()


def test_total_is_weighted_sum_of_terms() -> None:
    g = get_geometry("lorentz")
    obj = Objective(g, "infonce", "neg_dist", logit_scale=5.0, entail_weight=0.2,
                    centroid_weight=0.5, centroid_p=1.5, centroid_q=0.3)
    img, txt = _batch()
    out = obj(img, txt, 0.8)
    c = infonce(5.0 * pairwise_logits("neg_dist", img, txt, g, 0.8))
    e = entailment_loss(txt, img, g, 0.8)
    m = centroid_loss(img, txt, g, 0.8, 1.5, 0.3)
    torch.testing.assert_close(out["loss/contrastive"], c)
    torch.testing.assert_close(out["loss/entailment"], e)
    torch.testing.assert_close(out["loss/centroid"], m)
    torch.testing.assert_close(out["loss"], c + 0.2 * e + 0.5 * m)
    assert out["logit_scale"].item() == pytest.approx(5.0, rel=1e-5)


def test_angle_contrastive_matches_angle_loss() -> None:
    g = get_geometry("euclidean")
    obj = Objective(g, "angle", logit_scale=7.0)
    img, txt = _batch()
    torch.testing.assert_close(obj(img, txt)["loss"], angle_loss(img, txt, g, 1.0, 7.0))


def test_siglip_bias_is_learnable_and_used() -> None:
    obj = Objective("sphere", "siglip", siglip_bias=-3.0, logit_scale=10.0)
    assert obj.siglip_bias is not None and obj.siglip_bias.requires_grad
    img, txt = _batch()
    l1 = obj(img, txt)["loss"]
    l1.backward()
    assert obj.siglip_bias.grad is not None and obj.siglip_bias.grad.abs() > 0
    assert obj.logit_scale.log_value.grad is not None
    with torch.no_grad():
        obj.siglip_bias.fill_(-5.0)
    assert not torch.isclose(obj(img, txt)["loss"], l1)


def test_siglip_warns_for_a_negative_bias_on_distance_logits() -> None:
    with pytest.warns(UserWarning, match="loss.siglip_bias = -10 with loss.logit = 'neg_sqdist'"):
        Objective("euclidean", "siglip", logit="neg_sqdist")
    with pytest.warns(UserWarning, match="neg_dist"):
        Objective("lorentz", "siglip", logit="neg_dist")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cosine at -10 and distances at 0 are the intended inits
        Objective("sphere", "siglip")
        Objective("euclidean", "siglip", logit="neg_sqdist", siglip_bias=0.0)
        Objective("euclidean", "infonce", logit="neg_sqdist")
    assert [siglip_initial_bias(k) for k in ("cosine", "neg_dist", "neg_sqdist")] == [-10, 0, 0]
    with warnings.catch_warnings():  # each kind's own start never warns
        warnings.simplefilter("error")
        for kind in ("cosine", "neg_dist", "neg_sqdist"):
            Objective("euclidean", "siglip", logit=kind, siglip_bias=siglip_initial_bias(kind))


def test_logit_scale_clamped_and_fixed() -> None:
    obj = Objective("sphere", logit_scale=500.0, max_logit_scale=100.0, learn_logit_scale=False)
    out = obj(*_batch())
    assert out["logit_scale"].item() == pytest.approx(100.0, rel=1e-5)
    assert not any(p.requires_grad for p in obj.parameters())


def test_similarity_shape_and_kind() -> None:
    img, txt = torch.randn(3, 6), torch.randn(5, 6)
    obj = Objective("euclidean", logit="neg_sqdist")
    sim = obj.similarity(img, txt)
    assert sim.shape == (3, 5)
    torch.testing.assert_close(sim, -torch.cdist(img, txt) ** 2, rtol=1e-4, atol=1e-4)
    ang = Objective("lorentz", "angle").similarity(img, txt, 1.0)
    assert ang.shape == (3, 5)
    torch.testing.assert_close(ang, get_geometry("lorentz").pairwise_ext_angle(img, txt, 1.0))
    # larger = better: an image beyond its text on the ray scores highest for that text
    t = torch.nn.functional.normalize(torch.randn(4, 6), dim=-1)
    s2 = Objective("lorentz", "angle").similarity(2 * t, t, 1.0)
    assert (s2.argmax(dim=1) == torch.arange(4)).all()


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="infonce"):
        Objective("sphere", contrastive="clip")
    with pytest.raises(ValueError, match="cosine"):
        Objective("sphere", logit="l2")
    with pytest.raises(ValueError):
        Objective("hyperbolic")
    for kw in ({"contrastive": "angle"}, {"entail_weight": 0.1}, {"centroid_weight": 0.1}):
        with pytest.raises(ValueError, match="origin"):
            Objective("sphere", **kw)
    with pytest.raises(ValueError, match="siglip_exchange.*'siglip'"):
        Objective("sphere", "infonce", siglip_exchange="ring")
    with pytest.raises(ValueError, match="gather_with_grad"):
        Objective("sphere", "siglip", siglip_exchange="ring", gather_with_grad=False)
    with pytest.raises(ValueError, match="allowed: gather, ring"):
        Objective("sphere", "siglip", siglip_exchange="bidir")


def test_ring_exchange_is_the_siglip_loss_on_one_process() -> None:
    img, txt = _batch()
    ring = Objective("euclidean", "siglip", "neg_sqdist", siglip_exchange="ring")
    plain = Objective("euclidean", "siglip", "neg_sqdist")
    torch.testing.assert_close(ring(img, txt)["loss"], plain(img, txt)["loss"])


def test_bf16_autocast_float32_terms() -> None:
    obj = Objective("lorentz", "infonce", "neg_dist", entail_weight=0.2)
    img, txt = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = obj(img.bfloat16(), txt.bfloat16(), torch.tensor(1.0))
    assert all(v.dtype == torch.float32 for v in out.values())
    ref = obj(img.bfloat16().float(), txt.bfloat16().float(), 1.0)
    torch.testing.assert_close(out["loss"], ref["loss"])


def _rank_points(geo: str, n1: int = 40, n2: int = 70) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    img, txt = torch.randn(n1, 8, generator=g), torch.randn(n2, 8, generator=g)
    if geo == "sphere":
        img, txt = get_geometry("sphere").exp_map0(img), get_geometry("sphere").exp_map0(txt)
    return img, txt


@pytest.mark.parametrize(("geo", "kwargs"), RANK_CASES)
def test_rank_scores_rank_like_similarity_both_ways(geo: str, kwargs: dict) -> None:
    obj = Objective(geo, **kwargs)
    img, txt = _rank_points(geo)
    sim, rank = obj.similarity(img, txt, 0.7), obj.rank_scores(img, txt, 0.7)
    assert rank.shape == sim.shape and rank.dtype == torch.float32
    for dim in (1, 0):  # rows: texts for an image; columns: images for a text
        order = rank.argsort(dim=dim, descending=True, stable=True)
        s = sim.gather(dim, order)  # similarity in rank order: non-increasing up to rounding
        step = s.narrow(dim, 1, s.shape[dim] - 1) - s.narrow(dim, 0, s.shape[dim] - 1)
        assert step.max() <= 1e-5 * (1 + sim.abs().max())
        assert torch.equal(rank.argmax(dim), sim.argmax(dim))


@pytest.mark.parametrize(("geo", "kwargs"), RANK_CASES)
def test_rank_scores_formula(geo: str, kwargs: dict) -> None:
    """The documented monotone map of each kind: identical where it is the similarity."""
    obj = Objective(geo, **kwargs)
    g, c = get_geometry(geo), 0.7
    img, txt = _rank_points(geo)
    sim, rank = obj.similarity(img, txt, c), obj.rank_scores(img, txt, c)
    kind = kwargs.get("logit", "cosine")
    if kwargs.get("contrastive") == "angle" or kind in ("cosine", "dot") or (
        kind == "inner" and geo != "lorentz"
    ):
        assert torch.equal(rank, sim)
    elif geo == "sphere":  # neg_dist, neg_sqdist: the cosine
        torch.testing.assert_close(rank, img @ txt.T)
    elif geo == "euclidean":  # -d^2
        torch.testing.assert_close(rank, -torch.cdist(img, txt) ** 2, rtol=1e-4, atol=1e-4)
    else:  # -u = c <x, y>_L + 1 = 1 - cosh(sqrt(c) d)
        torch.testing.assert_close(rank, c * g.pairwise_inner(img, txt, c) + 1.0,
                                   rtol=1e-4, atol=1e-4)
        d = g.pairwise_dist(img, txt, c)
        torch.testing.assert_close(rank, 1.0 - torch.cosh(c**0.5 * d), rtol=1e-4, atol=1e-4)


def test_rank_scores_small_curvature_and_duplicates() -> None:
    """Lorentz rank scores keep their digits as c -> 0 (u, not z = 1 + u), and exact duplicate
    points tie exactly, as they do in the similarity."""
    obj = Objective("lorentz", logit="neg_dist")
    img, txt = _rank_points("lorentz", 30, 50)
    txt[40], txt[45] = txt[3], txt[3]
    for c in (1e-6, 1.0, 10.0):
        rank, sim = obj.rank_scores(img, txt, c), obj.similarity(img, txt, c)
        assert torch.equal(rank[:, 3], rank[:, 40]) and torch.equal(rank[:, 3], rank[:, 45])
        assert torch.equal(sim[:, 3], sim[:, 40])
        assert torch.equal(rank.argmax(1), sim.argmax(1))
    # at c = 1e-6 the order is the Euclidean one (d_L -> |x - y|), resolved in float32
    rank = obj.rank_scores(img, txt, 1e-6)
    assert torch.equal(rank.argmax(1), (-torch.cdist(img, txt)).argmax(1))
    assert (rank.max(1).values - rank.min(1).values).min() > 1e-6


def test_rank_scores_autocast_and_float64() -> None:
    obj = Objective("euclidean", logit="neg_sqdist")
    img, txt = _rank_points("euclidean")
    assert obj.rank_scores(img.half(), txt.half()).dtype == torch.float32
    assert obj.rank_scores(img.double(), txt.double()).dtype == torch.float64
