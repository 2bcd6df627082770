"""HyCoCLIP compositional objective and UNCHA uncertainty (clipspace.losses.compositional).

Every term is checked against a direct recomputation written out below (float64, explicit loops,
the cone formulas of the authors' code as transcribed in docs/reference.md), in Lorentz and
Euclidean space; values and gradients are checked on degenerate boxes in float32 and under bf16
autocast.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from clipspace.geometry import get_geometry
from clipspace.losses import (
    CompositionalWeights,
    compositional_loss,
    entailment_loss,
    radius_uncertainty,
    uncertainty_calibration,
    uncertainty_weights,
)
from tests.helpers.geometry import FEW, seeds

GEOS = ["lorentz", "euclidean"]
K = 0.1
CONES = ("entail_text_image", "entail_boxtext_boximage", "entail_boximage_image",
         "entail_boxtext_text")


# ------------------------------------------------------------------ direct recomputation
def _dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return sum(x[k] * y[k] for k in range(x.shape[0]))


def _norm(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(_dot(x, x))


def _time(x: torch.Tensor, c: float) -> torch.Tensor:
    return torch.sqrt(1.0 / c + _dot(x, x))


def ref_dist(geo: str, x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """Lorentz: acosh(-c <x,y>_L) / sqrt(c), <x,y>_L = x.y - x_t y_t; Euclidean: |x - y|."""
    if geo == "lorentz":
        z = -c * (_dot(x, y) - _time(x, c) * _time(y, c))
        return torch.acosh(torch.clamp(z, min=1.0)) / math.sqrt(c)
    return _norm(x - y)


def ref_ext(geo: str, x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """HyCoCLIP lorentz.oxy_angle / EuCLIP euclidean_entailment: exterior angle at x of O-x-y."""
    if geo == "lorentz":
        xt, yt = _time(x, c), _time(y, c)
        lval = c * (_dot(x, y) - xt * yt)
        cos = (yt + lval * xt) / (_norm(x) * torch.sqrt(lval * lval - 1.0))
    else:
        cos = _dot(y - x, x) / (_norm(y - x) * _norm(x))
    return torch.acos(torch.clamp(cos, -1.0, 1.0))


def ref_aper(geo: str, x: torch.Tensor, c: float) -> torch.Tensor:
    """Lorentz asin(min(1, 2K / (sqrt(c)|x|))); Euclidean asin(min(1, K / |x|))."""
    arg = 2 * K / (math.sqrt(c) * _norm(x)) if geo == "lorentz" else K / _norm(x)
    return torch.asin(torch.clamp(arg, max=1.0))


def ref_cone(geo, apex, child, eta, c):  # type: ignore[no-untyped-def]
    """mean_i max(0, ext(apex_i, child_i) - eta aper(apex_i))."""
    vals = [torch.relu(ref_ext(geo, a, b, c) - eta * ref_aper(geo, a, c))
            for a, b in zip(apex, child, strict=True)]
    return sum(vals) / len(vals)


def ref_ce(geo, rows, cols, targets, s, c, row_w=None):  # type: ignore[no-untyped-def]
    """mean_i [ -z_i,t_i + log sum_j exp z_ij ],  z_ij = s w_i (-d(row_i, col_j))."""
    total = 0.0
    for i, r in enumerate(rows):
        w = 1.0 if row_w is None else row_w[i]
        z = [s * w * -ref_dist(geo, r, col, c) for col in cols]
        total = total - z[int(targets[i])] + torch.log(sum(torch.exp(v) for v in z))
    return total / len(rows)


def ref_u(x: torch.Tensor) -> torch.Tensor:
    """UNCHA u = log(1 + exp(-|x|))."""
    return torch.log(1.0 + torch.exp(-_norm(x)))


def ref_calib(geo, apex, child, eta, c, us):  # type: ignore[no-untyped-def]
    """10 (mean(0.5 r.detach() / exp(u) + 0.5 u) + H(softmax u)), r = relu(th - eta om) + 0.1 th."""
    terms = []
    for a, b, u in zip(apex, child, us, strict=True):
        th = ref_ext(geo, a, b, c)
        r = (torch.relu(th - eta * ref_aper(geo, a, c)) + 0.1 * th).detach()
        terms.append(0.5 * r / (torch.exp(u) + 1e-6) + 0.5 * u)
    z = sum(torch.exp(u) for u in us)
    ent = -sum((torch.exp(u) / z) * torch.log(torch.exp(u) / z + 1e-8) for u in us)
    return 10.0 * (sum(terms) / len(terms) + ent)


def reference(geo, img, txt, bimg, btxt, scene, c, s, uncertainty=False):  # type: ignore[no-untyped-def]
    """Every term of compositional_loss, written out."""
    b = img.shape[0]
    lbl = list(range(b))
    out = {
        "contrastive": (ref_ce(geo, img, txt, lbl, s, c) + ref_ce(geo, txt, img, lbl, s, c)) / 2,
        "entail_text_image": ref_cone(geo, txt, img, 0.7, c),
        "entail_boxtext_boximage": ref_cone(geo, btxt, bimg, 0.7, c),
        "entail_boximage_image": ref_cone(geo, bimg, [img[int(j)] for j in scene], 1.2, c),
        "entail_boxtext_text": ref_cone(geo, btxt, [txt[int(j)] for j in scene], 1.2, c),
    }
    wi = wt = None
    if uncertainty:
        ui, ut = [ref_u(x) for x in bimg], [ref_u(x) for x in btxt]
        wi = [torch.exp(-0.5 * u).detach() for u in ui]
        wt = [torch.exp(-0.5 * u).detach() for u in ut]
        out["calibration_image"] = ref_calib(geo, bimg, [img[int(j)] for j in scene], 1.2, c, ui)
        out["calibration_text"] = ref_calib(geo, btxt, [txt[int(j)] for j in scene], 1.2, c, ut)
    out["box_image_text"] = ref_ce(geo, bimg, txt, scene, s, c, wi)
    out["box_text_image"] = ref_ce(geo, btxt, img, scene, s, c, wt)
    return out


# ------------------------------------------------------------------ inputs
def _points(geo: str, n: int, d: int, seed: int, dtype=torch.float64, scale=0.6):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, d, generator=g, dtype=torch.float64) * scale
    return get_geometry(geo).exp_map0(v, 1.0).to(dtype)


def _batch(geo: str, b: int, scene: list[int], d: int = 5, seed: int = 0, dtype=torch.float64):  # type: ignore[no-untyped-def]
    m = len(scene)
    pts = [_points(geo, n, d, seed + k, dtype) for k, n in enumerate((b, b, m, m))]
    return (*pts, torch.tensor(scene))


def _leaves(*xs: torch.Tensor) -> list[torch.Tensor]:
    return [x.clone().requires_grad_(True) for x in xs]


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize("uncertainty", [False, True])
@pytest.mark.parametrize("geo,c", [("lorentz", 1.0), ("lorentz", 0.5), ("euclidean", 1.0)])
def test_every_term_matches_direct_recomputation(geo: str, c: float, uncertainty: bool) -> None:
    scene = [0, 0, 1, 2, 2, 2]  # several boxes per scene, scene 3 has none
    img, txt, bimg, btxt, bs = _batch(geo, 4, scene, seed=1)
    lib = _leaves(img, txt, bimg, btxt)
    ref = _leaves(img, txt, bimg, btxt)
    out = compositional_loss(*lib, bs, get_geometry(geo), c, 3.0, uncertainty=uncertainty)
    exp = reference(geo, *ref, bs, c, 3.0, uncertainty)
    assert {k for k in out if k.startswith("loss/")} == {f"loss/{k}" for k in exp}
    for k, v in exp.items():
        assert out[f"loss/{k}"].item() == pytest.approx(v.item(), rel=1e-9, abs=1e-9), k
    w = CompositionalWeights()
    total = sum((w.calibration if k.startswith("calib") else getattr(w, k)) * v
                for k, v in exp.items())
    assert out["loss"].item() == pytest.approx(total.item(), rel=1e-9)
    # gradients too: where UNCHA detaches (row weights, calibration residual) and where not
    out["loss"].backward()
    total.backward()
    for a, b in zip(lib, ref, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("geo", GEOS)
def test_one_box_per_scene_is_hycoclip(geo: str) -> None:
    """M = B, box_scene = arange(B): L = 1/4 (4 CEs) + 0.2 * 1/2 (4 cone terms), HC L414-470."""
    b, c, s = 5, 1.0, 1 / 0.07
    img, txt, bimg, btxt, bs = _batch(geo, b, list(range(b)), seed=7)
    out = compositional_loss(img, txt, bimg, btxt, bs, get_geometry(geo), c, s)
    lbl = list(range(b))
    l_cont = 0.25 * (ref_ce(geo, img, txt, lbl, s, c) + ref_ce(geo, txt, img, lbl, s, c)
                     + ref_ce(geo, bimg, txt, lbl, s, c) + ref_ce(geo, btxt, img, lbl, s, c))
    l_ent = 0.5 * (ref_cone(geo, txt, img, 0.7, c) + ref_cone(geo, btxt, bimg, 0.7, c)
                   + ref_cone(geo, bimg, img, 1.2, c) + ref_cone(geo, btxt, txt, 1.2, c))
    assert out["loss"].item() == pytest.approx((l_cont + 0.2 * l_ent).item(), rel=1e-9)
    assert CompositionalWeights.hycoclip() == CompositionalWeights()
    # float32 inputs: same value to float32 rounding
    out32 = compositional_loss(img.float(), txt.float(), bimg.float(), btxt.float(), bs,
                               get_geometry(geo), c, s)
    assert out32["loss"].dtype == torch.float32
    assert out32["loss"].item() == pytest.approx(out["loss"].item(), rel=1e-4)


@pytest.mark.parametrize("geo", GEOS)
def test_gathered_columns_and_offset(geo: str) -> None:
    """Local rows against gathered wholes: targets offset by the rows of lower ranks."""
    img, txt, bimg, btxt, bs = _batch(geo, 3, [0, 2, 2], seed=3)
    oimg, otxt = _points(geo, 2, 5, 11), _points(geo, 2, 5, 12)
    all_img, all_txt = torch.cat([oimg, img]), torch.cat([otxt, txt])
    g, c, s = get_geometry(geo), 1.0, 2.0
    out = compositional_loss(img, txt, bimg, btxt, bs, g, c, s, all_img=all_img,
                             all_txt=all_txt, offset=2)
    lbl = [2, 3, 4]
    cont = (ref_ce(geo, img, all_txt, lbl, s, c) + ref_ce(geo, txt, all_img, lbl, s, c)) / 2
    assert out["loss/contrastive"].item() == pytest.approx(cont.item(), rel=1e-9)
    bi = ref_ce(geo, bimg, all_txt, bs + 2, s, c)
    assert out["loss/box_image_text"].item() == pytest.approx(bi.item(), rel=1e-9)
    local = compositional_loss(img, txt, bimg, btxt, bs, g, c, s)
    assert out["loss/entail_boximage_image"] == local["loss/entail_boximage_image"]


def test_sphere_raises_naming_the_geometry() -> None:
    img, txt, bimg, btxt, bs = _batch("euclidean", 3, [0, 1, 2])
    sph = get_geometry("sphere")
    with pytest.raises(ValueError, match="sphere"):
        compositional_loss(img, txt, bimg, btxt, bs, sph, logit="cosine")
    cont_only = CompositionalWeights(**{k: 0.0 for k in CONES})
    with pytest.raises(ValueError, match="sphere"):
        compositional_loss(img, txt, bimg, btxt, bs, sph, logit="cosine", weights=cont_only,
                           uncertainty=True)
    with pytest.raises(ValueError, match="sphere"):
        radius_uncertainty(bimg, sph)
    # contrastive terms only are fine on the sphere
    out = compositional_loss(img, txt, bimg, btxt, bs, sph, logit="cosine", weights=cont_only)
    assert set(out) == {"loss", "loss/contrastive", "loss/box_image_text", "loss/box_text_image"}


def test_bad_inputs_raise() -> None:
    img, txt, bimg, btxt, bs = _batch("lorentz", 3, [0, 1, 2])
    g = get_geometry("lorentz")
    for scene in (torch.tensor([0, 1, 3]), torch.tensor([-1, 0, 0]), torch.tensor([0.0, 1, 2]),
                  torch.tensor([0, 1])):
        with pytest.raises(ValueError, match="box_scene"):
            compositional_loss(img, txt, bimg, btxt, scene, g)
    with pytest.raises(ValueError, match="M = 0"):
        compositional_loss(img, txt, bimg[:0], btxt[:0], bs[:0], g)
    with pytest.raises(ValueError, match="logit"):
        compositional_loss(img, txt, bimg, btxt, bs, g, logit="nope")
    with pytest.raises(ValueError, match="calibration"):
        CompositionalWeights(calibration=-1.0)
    with pytest.raises(ValueError, match="every term weight is 0"):
        compositional_loss(img, txt, bimg, btxt, bs, g, weights=CompositionalWeights(
            0, 0, 0, 0, 0, 0, 0))


def test_entailment_eta_and_reduction_keep_meru_behaviour() -> None:
    g = get_geometry("lorentz")
    t, v = _points("lorentz", 6, 4, 1, torch.float32), _points("lorentz", 6, 4, 2, torch.float32)
    base = entailment_loss(t, v, g, 0.7)
    assert torch.equal(entailment_loss(t, v, g, 0.7, eta=1.0), base)
    per = entailment_loss(t, v, g, 0.7, eta=1.0, reduction="none")
    assert per.shape == (6,) and torch.equal(per.mean(), base)
    # a larger threshold never costs more
    assert (entailment_loss(t, v, g, 0.7, eta=1.2, reduction="none") <= per).all()
    with pytest.raises(ValueError, match="reduction"):
        entailment_loss(t, v, g, reduction="sum")


@pytest.mark.parametrize("geo", GEOS)
def test_uncertainty_weights_in_range(geo: str) -> None:
    g = get_geometry(geo)
    radii = torch.tensor([0.0, 1e-8, 1e-3, 0.1, 1.0, 10.0, 100.0, 1e4])
    x = radii[:, None] * torch.nn.functional.normalize(torch.ones(8, 3), dim=-1)
    u = radius_uncertainty(x, g)
    assert u[0].item() == pytest.approx(math.log(2.0), abs=1e-6)  # at the origin
    assert (u[:-1] >= u[1:]).all() and (u >= 0).all() and (u <= math.log(2.0) + 1e-7).all()
    w = uncertainty_weights(u)
    lo = math.exp(-math.log(2.0) / 2)
    assert (w >= lo - 1e-6).all() and (w <= 1.0).all()
    assert w[0].item() == pytest.approx(lo, abs=1e-6) and w[-1].item() == 1.0
    geod = radius_uncertainty(x, g, radius="geodesic")
    if geo == "euclidean":
        torch.testing.assert_close(geod, u)
    else:  # geodesic radius asinh(|x|) <= |x|: at least as uncertain
        assert (geod >= u - 1e-7).all()
    with pytest.raises(ValueError, match="radius"):
        radius_uncertainty(x, g, radius="other")


def test_calibration_matches_formula_and_detaches_residual() -> None:
    r = torch.tensor([0.3, 1.5, 0.0], dtype=torch.float64, requires_grad=True)
    u = torch.tensor([0.1, 0.6, 0.69], dtype=torch.float64, requires_grad=True)
    val = uncertainty_calibration(r, u)
    p = [math.exp(x) / sum(math.exp(y) for y in u.tolist()) for x in u.tolist()]
    ent = -sum(q * math.log(q + 1e-8) for q in p)
    mean = sum(0.5 * a / (math.exp(b) + 1e-6) + 0.5 * b for a, b in zip(r.tolist(), u.tolist(),
                                                                         strict=True)) / 3
    assert val.item() == pytest.approx(10 * (mean + ent), rel=1e-12)
    val.backward()
    assert r.grad is None and u.grad is not None


def _degenerate(geo: str) -> dict[str, tuple[torch.Tensor, ...]]:
    img, txt, bimg, btxt, bs = _batch(geo, 4, [0, 1, 1, 3], dtype=torch.float32, seed=5)
    unit = torch.nn.functional.normalize(img, dim=-1)
    zb = bimg.clone()
    zb[1] = 0.0
    zt = btxt.clone()
    zt[2] = 0.0
    return {
        "identical": (img, img.clone(), img[bs].clone(), img[bs].clone(), bs),
        "box-equals-scene": (img, txt, img[bs].clone(), txt[bs].clone(), bs),
        "zeros": (torch.zeros_like(img), torch.zeros_like(txt), torch.zeros_like(bimg),
                  torch.zeros_like(btxt), bs),
        "box-at-origin": (img, txt, zb, zt, bs),
        "huge": (1e4 * unit, 1e4 * unit.flip(0), 1e4 * unit[bs], 1e4 * unit.flip(0)[bs], bs),
        "huge-boxes-tiny-wholes": (1e-6 * unit, 1e-6 * unit.flip(0), 1e4 * unit[bs],
                                   1e4 * unit[bs].flip(0), bs),
        "one-box": (img, txt, bimg[:1], btxt[:1], bs[:1]),
    }


@pytest.mark.parametrize("uncertainty", [False, True])
@pytest.mark.parametrize("mode", ["float32", "bf16-autocast"])
@pytest.mark.parametrize("geo", GEOS)
def test_finite_on_degenerate_boxes(geo: str, mode: str, uncertainty: bool) -> None:
    g = get_geometry(geo)
    for case, (*pts, bs) in _degenerate(geo).items():
        leaves = _leaves(*pts)
        curv = torch.tensor(1.0, requires_grad=True)
        scale = torch.tensor(1 / 0.07, requires_grad=True)
        if mode == "float32":
            out = compositional_loss(*leaves, bs, g, curv, scale, uncertainty=uncertainty)
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = compositional_loss(*(x.to(torch.bfloat16) for x in leaves), bs, g, curv,
                                         scale, uncertainty=uncertainty)
        for k, v in out.items():
            assert v.dtype == torch.float32 and v.dim() == 0, (case, k, v.dtype)
            assert torch.isfinite(v), (geo, mode, case, k, v)
        out["loss"].backward()
        for t in (*leaves, curv, scale):
            if t.grad is not None:
                assert torch.isfinite(t.grad).all(), (geo, mode, case, t.grad)


@FEW
@given(seed=seeds, m=st.integers(min_value=1, max_value=6), geo=st.sampled_from(GEOS))
def test_box_order_and_duplication_do_not_matter(seed: int, m: int, geo: str) -> None:
    """Each part term is a mean over parts: permuting the boxes (with their scenes) changes
    nothing, duplicating every box changes nothing but the calibration's entropy."""
    gen = torch.Generator().manual_seed(seed)
    scene = torch.randint(0, 3, (m,), generator=gen)
    img, txt, bimg, btxt, _ = _batch(geo, 3, scene.tolist(), seed=seed % 1000)
    g = get_geometry(geo)
    base = compositional_loss(img, txt, bimg, btxt, scene, g, uncertainty=True)
    perm = torch.randperm(m, generator=gen)
    permuted = compositional_loss(img, txt, bimg[perm], btxt[perm], scene[perm], g,
                                  uncertainty=True)
    twice = compositional_loss(img, txt, bimg.repeat(2, 1), btxt.repeat(2, 1), scene.repeat(2),
                               g, uncertainty=True)
    for k, v in base.items():
        assert permuted[k].item() == pytest.approx(v.item(), rel=1e-9, abs=1e-12), k
        if k.startswith(("loss/box", "loss/entail", "loss/contrastive", "uncertainty/")):
            assert twice[k].item() == pytest.approx(v.item(), rel=1e-9, abs=1e-12), k
    # the entropy of softmax(u) over 2M copies is the one over M plus log 2
    assert twice["loss/calibration_image"].item() == pytest.approx(
        base["loss/calibration_image"].item() + 10 * math.log(2.0), rel=1e-6)
