"""analysis.entropy: per-sample logit entropy (Two Effects Sec. 6.2) and alignment / uniformity
(Wang & Isola 2020), checked against closed forms and brute force."""

from __future__ import annotations

import math

import pytest
import torch

from clipspace.analysis.entropy import (
    alignment_uniformity,
    dynamics_stats,
    entropy_stats,
    logit_entropy,
)
from clipspace.analysis.gap import gap_stats


def brute_entropy(row: list[float]) -> float:
    z = [math.exp(v - max(row)) for v in row]
    p = [v / sum(z) for v in z]
    return -sum(q * math.log(q) for q in p if q > 0)


def brute_uniformity(x: torch.Tensor, t: float = 2.0) -> float:
    """log of the mean over ordered pairs i != j of exp(-t |x_i - x_j|^2), pair by pair."""
    n = len(x)
    terms = [math.exp(-t * float(((x[i] - x[j]) ** 2).sum()))
             for i in range(n) for j in range(n) if i != j]
    return math.log(sum(terms) / len(terms))


def unit(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("n", [2, 7, 64])
def test_flat_logits_have_entropy_log_n(n: int) -> None:
    h = logit_entropy(torch.full((n, n), 3.5))
    assert torch.allclose(h, torch.full((n,), math.log(n)), atol=1e-5)
    stats = entropy_stats(torch.zeros(n, n))
    assert stats["entropy"] == pytest.approx(math.log(n), abs=1e-5)
    assert stats["entropy_rel"] == pytest.approx(1.0, abs=1e-5)


def test_one_hot_logits_have_entropy_zero() -> None:
    logits = torch.full((5, 5), -1e4)
    logits.fill_diagonal_(1e4)
    h = logit_entropy(logits)
    assert torch.equal(h, torch.zeros(5))
    assert not torch.signbit(h).any()  # no -0.0
    assert entropy_stats(logits)["entropy_rel"] == 0.0


def test_entropy_matches_brute_force_per_row_and_direction() -> None:
    logits = torch.randn(6, 9, generator=torch.Generator().manual_seed(1)) * 4
    for i, row in enumerate(logits.tolist()):
        assert float(logit_entropy(logits)[i]) == pytest.approx(brute_entropy(row), abs=1e-5)
    sq = logits[:6, :6]
    stats = entropy_stats(sq)
    assert stats["entropy_i2t"] == pytest.approx(
        sum(brute_entropy(r) for r in sq.tolist()) / 6, abs=1e-5)
    assert stats["entropy_t2i"] == pytest.approx(
        sum(brute_entropy(r) for r in sq.T.tolist()) / 6, abs=1e-5)


def test_huge_logits_stay_finite() -> None:
    logits = torch.tensor([[1e30, -1e30, 0.0], [3e38, 3e38, -3e38], [0.0, 0.0, 0.0]])
    h = logit_entropy(logits)
    assert torch.isfinite(h).all()
    assert float(h[0]) == pytest.approx(0.0, abs=1e-6)
    assert float(h[1]) == pytest.approx(math.log(2), abs=1e-5)


def test_alignment_of_identical_sets_is_zero_and_of_opposite_is_four() -> None:
    x = unit(10, 4, 0)
    assert alignment_uniformity(x, x)["alignment"] == pytest.approx(0.0, abs=1e-12)
    assert alignment_uniformity(x, -x)["alignment"] == pytest.approx(4.0)
    # inputs are L2-normalised first: scaling a row changes nothing
    assert alignment_uniformity(3 * x, x)["alignment"] == pytest.approx(0.0, abs=1e-12)


def test_uniformity_matches_the_brute_force_formula() -> None:
    x, y = unit(12, 5, 1), unit(12, 5, 2)
    out = alignment_uniformity(x, y)
    assert out["uniformity_image"] == pytest.approx(brute_uniformity(x), rel=1e-9)
    assert out["uniformity_text"] == pytest.approx(brute_uniformity(y), rel=1e-9)
    assert out["uniformity"] == pytest.approx((brute_uniformity(x) + brute_uniformity(y)) / 2)
    assert out["alignment"] == pytest.approx(float(((x - y) ** 2).sum(1).mean()))
    # collapsed points: every distance 0 -> log 1 = 0, the worst uniformity
    same = x[:1].repeat(4, 1)
    assert alignment_uniformity(same, same)["uniformity"] == pytest.approx(0.0, abs=1e-12)
    assert alignment_uniformity(x, y, t=0.5)["uniformity_image"] == pytest.approx(
        brute_uniformity(x, 0.5), rel=1e-9)


def test_alignment_uniformity_refuses_mismatched_or_single_rows() -> None:
    with pytest.raises(ValueError, match="N >= 2"):
        alignment_uniformity(unit(1, 3, 0), unit(1, 3, 0))
    with pytest.raises(ValueError, match="N >= 2"):
        alignment_uniformity(unit(4, 3, 0), unit(5, 3, 0))


def test_dynamics_stats_joins_gap_entropy_and_alignment() -> None:
    x, y = unit(16, 8, 3).float(), unit(16, 8, 4).float()
    logits = 10.0 * x @ y.T
    out = dynamics_stats(x, y, logits)
    assert out["l2m"] == pytest.approx(gap_stats(x, y)["l2m"])
    assert out["rmg"] == pytest.approx(gap_stats(x, y)["rmg"])
    assert out["entropy"] == pytest.approx(entropy_stats(logits)["entropy"])
    assert out["alignment"] == pytest.approx(alignment_uniformity(x, y)["alignment"])
    assert all(math.isfinite(v) for v in out.values())
