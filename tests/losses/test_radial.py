"""Radial Embedding loss terms against a hand computation on a tiny 2-D batch."""

from __future__ import annotations

import math

import pytest
import torch

from clipspace.losses import chain_angles, entailment_cone_finetune_loss, radial_loss


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One chain in 2-D, root at the origin; angles are easy by hand.

    p1=(1,0), p2=(2,0), p3=(2,1), p4=(2,2); n1=(1,1), n2=(3,0)... see the angles below.
    """
    root = torch.zeros(2)
    pos = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [2.0, 1.0], [2.0, 2.0]]])
    neg = torch.tensor([[[1.0, 1.0], [3.0, 0.0], [1.0, 0.0], [9.0, 9.0]]])
    return root, pos, neg


def test_chain_angles_by_hand() -> None:
    root, pos, neg = _batch()
    xi_pos, xi_neg = chain_angles(root, pos, neg)
    # Xi(p1,p2): dir (1,0) vs (1,0) -> 0; Xi(p2,p3): (1,0) vs (0,1) -> pi/2;
    # Xi(p3,p4): p3 - r = (2,1), p4 - p3 = (0,1) -> acos(1/sqrt5)
    exp_pos = torch.tensor([[0.0, math.pi / 2, math.acos(1 / math.sqrt(5))]])
    # Xi(p1,n1): (1,0) vs (0,1) -> pi/2; Xi(p2,n2): (1,0) vs (1,0) -> 0;
    # Xi(p3,n3): (2,1) vs (-1,-1) -> acos(-3/(sqrt5 sqrt2))
    exp_neg = torch.tensor([[math.pi / 2, 0.0, math.acos(-3 / (math.sqrt(5) * math.sqrt(2)))]])
    torch.testing.assert_close(xi_pos, exp_pos, atol=3e-3, rtol=0)
    torch.testing.assert_close(xi_neg, exp_neg, atol=3e-3, rtol=0)


def test_radial_loss_terms_by_hand() -> None:
    root, pos, neg = _batch()
    a3 = math.acos(1 / math.sqrt(5))
    b3 = math.acos(-3 / math.sqrt(10))
    xp = [0.0, math.pi / 2, a3]
    xn = [math.pi / 2, 0.0, b3]
    loss_e = sum(xp) / 3 - sum(xn) / 3
    diff = [p - n for p, n in zip(xp, xn, strict=True)]
    i_star = max(range(3), key=lambda k: xp[k])  # largest positive angle: k=1
    j_star = min(range(3), key=lambda k: xn[k])  # smallest negative angle: k=1
    loss_m = diff[i_star] + diff[j_star]
    tuned = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    frozen = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    loss_p = (1 - (math.cos(math.pi / 4) + 1.0) / 2) / 2
    out = radial_loss(root, pos, neg, tuned, frozen, lambda_p=10, lambda_e=1, lambda_m=1)
    assert set(out) == {"loss", "loss_e", "loss_m", "loss_p"}
    assert out["loss_e"].item() == pytest.approx(loss_e, abs=3e-3)
    assert out["loss_m"].item() == pytest.approx(loss_m, abs=3e-3)
    assert out["loss_p"].item() == pytest.approx(loss_p, abs=1e-5)
    total = 10 * loss_p + loss_e + loss_m
    assert out["loss"].item() == pytest.approx(total, abs=5e-3)
    out2 = radial_loss(root, pos, neg, tuned, frozen, lambda_p=0.0, lambda_e=2.0, lambda_m=0.0)
    assert out2["loss"].item() == pytest.approx(2 * loss_e, abs=5e-3)


def test_radial_finite_grads_degenerate_and_autocast() -> None:
    root = torch.zeros(4, requires_grad=True)
    pos = torch.zeros(3, 4, 4, requires_grad=True)  # all identical points, all at the root
    neg = torch.zeros(3, 4, 4, requires_grad=True)
    tuned = torch.zeros(5, 4, requires_grad=True)
    frozen = torch.zeros(5, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = radial_loss(root, pos.bfloat16(), neg, tuned, frozen)
        ec = entailment_cone_finetune_loss(root, pos, neg, tuned, frozen)
    (out["loss"] + ec["loss"]).backward()
    assert out["loss"].dtype == torch.float32
    for t in (root, pos, neg, tuned):
        assert torch.isfinite(t.grad).all()


def test_radial_gradcheck_float64() -> None:
    g = torch.Generator().manual_seed(4)
    args = [torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True)
            for s in [(3,), (2, 4, 3), (2, 4, 3), (5, 3)]]
    frozen = torch.randn(5, 3, dtype=torch.float64)

    def f(r: torch.Tensor, p: torch.Tensor, n: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return radial_loss(r, p, n, t, frozen)["loss"]

    assert torch.autograd.gradcheck(f, tuple(args))


def test_radial_loss_lower_for_radial_chains() -> None:
    """Positives going straight outward with negatives off to the side score lower than
    negatives that are just as radial as the positives."""
    root = torch.zeros(3)
    u = torch.tensor([1.0, 0.0, 0.0])
    side = torch.tensor([0.0, 1.0, 0.0])
    radial = torch.stack([u * k for k in (1, 2, 3, 4)])[None]
    off_side = radial + side  # n_k - p_k = side: Xi_r(p_k, n_k) = pi/2
    on_ray = radial + 0.5 * u  # n_k - p_k along the ray: Xi_r(p_k, n_k) = 0
    t = torch.ones(1, 3)
    good = radial_loss(root, radial, off_side, t, t)
    bad = radial_loss(root, radial, on_ray, t, t)
    assert good["loss_e"].item() == pytest.approx(-math.pi / 2, abs=3e-3)
    assert good["loss_m"].item() == pytest.approx(-math.pi, abs=5e-3)
    assert bad["loss_e"].item() == pytest.approx(0.0, abs=3e-3)
    assert good["loss"] < bad["loss"]


def test_ec_baseline_by_hand() -> None:
    root, pos, neg = _batch()
    out = entailment_cone_finetune_loss(root, pos, neg)
    rad = [1.0, 2.0, math.sqrt(5)]
    aper = [math.asin(min(1.0, 0.1 / r)) for r in rad]
    xp = [0.0, math.pi / 2, math.acos(1 / math.sqrt(5))]
    xn = [math.pi / 2, 0.0, math.acos(-3 / math.sqrt(10))]
    lp = sum(max(0.0, x - a) for x, a in zip(xp, aper, strict=True)) / 3
    ln = sum(max(0.0, 0.1 - (x - a)) for x, a in zip(xn, aper, strict=True)) / 3
    assert out["loss_pos"].item() == pytest.approx(lp, abs=3e-3)
    assert out["loss_neg"].item() == pytest.approx(ln, abs=3e-3)
    assert out["loss"].item() == pytest.approx(lp + ln, abs=5e-3)
