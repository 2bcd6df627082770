"""pairwise_logits, infonce, siglip: values against naive formulas, gradcheck, monotonicity."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clipspace.geometry import get_geometry
from clipspace.losses import LOGIT_KINDS, infonce, pairwise_logits, siglip
from tests.helpers.losses import CASES

torch.manual_seed(0)


def _naive_logits(kind: str, geo: str, x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """Reference logits from per-pair loops (B x B x D is fine here: tiny)."""
    if kind == "cosine":
        return F.cosine_similarity(x[:, None], y[None], dim=-1)
    if kind == "dot":
        return (x[:, None] * y[None]).sum(-1)
    if geo == "lorentz":
        xt = torch.sqrt(1 / c + (x * x).sum(-1))
        yt = torch.sqrt(1 / c + (y * y).sum(-1))
        inner = x @ y.T - xt[:, None] * yt[None]
        d = torch.acosh(torch.clamp(-c * inner, min=1.0)) / math.sqrt(c)
    elif geo == "euclidean":
        inner = x @ y.T
        d = (x[:, None] - y[None]).norm(dim=-1)
    else:
        xn, yn = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
        inner = x @ y.T
        d = torch.acos((xn @ yn.T).clamp(-1, 1))
    return {"inner": inner, "neg_dist": -d, "neg_sqdist": -d * d}[kind]


@pytest.mark.parametrize("geo", ["sphere", "euclidean", "lorentz"])
@pytest.mark.parametrize("kind", LOGIT_KINDS)
def test_pairwise_logits_match_naive(kind: str, geo: str) -> None:
    x = torch.randn(5, 6, dtype=torch.float64) * 0.7
    y = torch.randn(3, 6, dtype=torch.float64) * 0.7
    if geo == "sphere":
        x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    got = pairwise_logits(kind, x, y, get_geometry(geo), 0.5)
    assert got.shape == (5, 3)
    torch.testing.assert_close(got, _naive_logits(kind, geo, x, y, 0.5), rtol=1e-5, atol=1e-5)


def test_unknown_logit_kind_names_allowed() -> None:
    with pytest.raises(ValueError, match="neg_sqdist"):
        pairwise_logits("euclid", torch.zeros(2, 3), torch.zeros(2, 3), get_geometry("sphere"))


def test_logits_float32_under_autocast() -> None:
    x = torch.randn(4, 8).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = pairwise_logits("dot", x, x, get_geometry("euclidean"))
    assert out.dtype == torch.float32


def test_infonce_matches_manual() -> None:
    lg = torch.randn(4, 4)
    logp_i = lg.log_softmax(1).diagonal()
    logp_t = lg.log_softmax(0).diagonal()
    expected = -(logp_i.mean() + logp_t.mean()) / 2
    torch.testing.assert_close(infonce(lg), expected)
    # explicit labels / logits_per_text (local-loss form)
    lt = torch.randn(2, 4)
    lbl = torch.tensor([2, 3])
    exp2 = (F.cross_entropy(lg[2:], lbl) + F.cross_entropy(lt, lbl)) / 2
    torch.testing.assert_close(infonce(lg[2:], lbl, lt), exp2)


def test_siglip_matches_manual() -> None:
    lg = torch.randn(3, 3)
    bias = torch.tensor(-1.5)
    total = 0.0
    for i in range(3):
        for j in range(3):
            z = 1.0 if i == j else -1.0
            total += -math.log(1 / (1 + math.exp(-z * (lg[i, j].item() + bias.item()))))
    torch.testing.assert_close(siglip(lg, bias), torch.tensor(total / 3), rtol=1e-5, atol=1e-5)
    lbl = torch.tensor([1, 0, 2])
    assert not torch.isclose(siglip(lg, bias, lbl), siglip(lg, bias))


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck_float64(name: str) -> None:
    fn = CASES[name]
    g = torch.Generator().manual_seed(1)
    img = (0.3 + 0.6 * torch.rand(3, 4, generator=g, dtype=torch.float64)) * torch.randn(
        3, 4, generator=g, dtype=torch.float64
    )
    txt = 0.5 * torch.randn(3, 4, generator=g, dtype=torch.float64)
    img.requires_grad_(True)
    txt.requires_grad_(True)
    curv = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (img, txt, curv), fast_mode=True)


def test_siglip_gradcheck_bias() -> None:
    lg = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(-2.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(siglip, (lg, b))


@pytest.mark.parametrize(
    "name", [n for n in sorted(CASES) if n.startswith(("infonce", "siglip"))]
)
def test_contrastive_decreases_when_pairs_move_closer(name: str) -> None:
    """Moving each image from the next pair's text to its own text lowers the loss."""
    fn = CASES[name]
    g = torch.Generator().manual_seed(2)
    txt = F.normalize(torch.randn(6, 8, generator=g), dim=-1) * 0.8
    wrong = txt.roll(1, dims=0)
    losses = []
    for a in (0.0, 0.25, 0.75, 1.0):
        img = a * txt + (1 - a) * wrong
        losses.append(fn(img, txt, 1.0).item())
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
