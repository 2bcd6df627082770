"""Recall@K against a brute-force full-matrix implementation, with and without caption groups;
rank scores against exact scores in every geometry; the tie rule; the tile memory bound."""

import numpy as np
import pytest
import torch

import clipspace.eval.retrieval as retrieval
from clipspace.eval.retrieval import (
    caption_groups,
    cosine_scores,
    merge_topk,
    recall_at_k,
    tile_topk,
)
from clipspace.geometry import get_geometry
from clipspace.losses import Objective
from tests.helpers.losses import RANK_CASES


def brute_scores(s, gi, gt, ks):
    """Recall@K of a full score matrix, ordered (score desc, index asc): the documented rule."""
    s = np.asarray(s)
    out = {}
    for k in ks:
        top_t = np.argsort(-s, axis=1, kind="stable")[:, :k]
        out[f"i2t_r{k}"] = float(np.mean([(gt[top_t[i]] == gi[i]).any() for i in range(len(gi))]))
        top_i = np.argsort(-s.T, axis=1, kind="stable")[:, :k]
        out[f"t2i_r{k}"] = float(np.mean([(gi[top_i[j]] == gt[j]).any() for j in range(len(gt))]))
    return out


def brute(img, txt, gi, gt, ks, score=cosine_scores):
    return brute_scores(score(torch.as_tensor(img), torch.as_tensor(txt)).numpy(), gi, gt, ks)


@pytest.mark.parametrize("chunk", [1, 13, 500])
def test_recall_instance_matches_brute(chunk: int) -> None:
    rng = np.random.default_rng(0)
    img = rng.normal(size=(97, 8)).astype(np.float32)
    txt = (img + 1.5 * rng.normal(size=img.shape)).astype(np.float32)
    got = recall_at_k(img, txt, ks=(1, 5, 10), chunk=chunk)
    ids = np.arange(97)
    want = brute(img, txt, ids, ids, (1, 5, 10))
    assert got == pytest.approx(want)
    assert 0 < got["i2t_r1"] < got["i2t_r10"] < 1


def test_recall_with_caption_groups() -> None:
    rng = np.random.default_rng(1)
    words = ["a", "b", "c", "d", "e"]
    caps = [words[i] for i in rng.integers(0, 5, 60)]
    centre = rng.normal(size=(5, 6))
    img = centre[[words.index(c) for c in caps]] + rng.normal(size=(60, 6))
    txt = centre[[words.index(c) for c in caps]] + 0.01 * rng.normal(size=(60, 6))
    gi, gt = caption_groups(caps)
    assert (gi == gt).all() and len(set(gi)) == len(set(caps))
    got = recall_at_k(img, txt, ks=(1, 5), chunk=7, img_groups=gi, txt_groups=gt)
    assert got == pytest.approx(brute(img, txt, gi, gt, (1, 5)))
    inst = recall_at_k(img, txt, ks=(1,))
    assert got["i2t_r1"] > inst["i2t_r1"]  # duplicates count as hits with groups


def test_recall_custom_score_and_unequal_gallery() -> None:
    rng = np.random.default_rng(2)
    img = rng.normal(size=(30, 4)).astype(np.float32)
    txt = rng.normal(size=(11, 4)).astype(np.float32)
    gi = rng.integers(0, 11, 30)
    gt = np.arange(11)

    def neg_dist(a, b):
        return -torch.cdist(a, b)

    got = recall_at_k(img, txt, score_fn=neg_dist, ks=(1, 3), chunk=4, img_groups=gi,
                      txt_groups=gt)
    assert got == pytest.approx(brute(img, txt, gi, gt, (1, 3), neg_dist))
    with pytest.raises(ValueError):
        recall_at_k(img, txt)


@pytest.fixture(params=[0.0, 1.0], ids=["dense", "filtered"])
def small_tiles(monkeypatch, request):
    """Tiles of at most 3000 scores and 5 dense rows: many tiles and slices; the later slices'
    column updates all dense, or all filtered by the running thresholds."""
    monkeypatch.setattr(retrieval, "MAX_SCORE_ELEMENTS", 3000)
    monkeypatch.setattr(retrieval, "FIRST_DENSE_ROWS", 5)
    monkeypatch.setattr(retrieval, "FILTER_MAX_SHARE", request.param)


def test_tile_topk_and_merge_order_ties_by_index() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        r, n, k = (int(v) for v in rng.integers(1, 40, 3))
        s = torch.from_numpy(rng.integers(-2, 3, (r, n)).astype(np.float32))
        want = torch.sort(s, dim=1, descending=True, stable=True)
        v, i = tile_topk(s, k, offset=7)
        assert torch.equal(i - 7, want.indices[:, :k]) and torch.equal(v, want.values[:, :k])
        vt, it = tile_topk(s.T, k)  # a transposed view: columns
        assert torch.equal(it, torch.sort(s.T, dim=1, descending=True, stable=True).indices[:, :k])
        cut = int(rng.integers(0, n + 1))
        a = tile_topk(s[:, :cut], k) if cut else None
        m = merge_topk(a, tile_topk(s[:, cut:], k, cut), k) if cut < n else a
        assert m is not None and torch.equal(m[1], want.indices[:, :k])


@pytest.mark.parametrize("groups", [False, True])
def test_ties_rank_by_index_in_both_directions(groups: bool, small_tiles) -> None:
    """Heavy exact ties (few distinct integer scores): a tied item ranks above another when its
    index is lower, across tiles, dense and filtered column updates alike."""
    rng = np.random.default_rng(4)
    for n_img, n_txt, chunk in ((60, 60, 7), (83, 41, 16), (41, 83, 100)):
        img = torch.from_numpy(rng.integers(-1, 2, (n_img, 3)).astype(np.float32))
        txt = torch.from_numpy(rng.integers(-1, 2, (n_txt, 3)).astype(np.float32))
        if groups:
            gi, gt = rng.integers(0, 9, n_img), rng.integers(0, 9, n_txt)
        elif n_img != n_txt:
            continue
        else:
            gi = gt = np.arange(n_img)
        kw = {"img_groups": gi, "txt_groups": gt} if groups else {}
        got = recall_at_k(img, txt, score_fn=lambda a, b: a @ b.T, ks=(1, 2, 5, 10),
                          chunk=chunk, **kw)
        assert got == brute_scores((img @ txt.T).numpy(), gi, gt, (1, 2, 5, 10))


def test_float64_scores_and_fewer_items_than_k(small_tiles) -> None:
    rng = np.random.default_rng(5)
    img = torch.from_numpy(rng.integers(-1, 2, (70, 3)).astype(np.float64))
    txt = torch.from_numpy(rng.integers(-1, 2, (8, 3)).astype(np.float64))
    gi, gt = rng.integers(0, 4, 70), rng.integers(0, 4, 8)
    got = recall_at_k(img, txt, score_fn=lambda a, b: a @ b.T, ks=(1, 3, 20), chunk=9,
                      img_groups=gi, txt_groups=gt)
    assert got == brute_scores((img @ txt.T).numpy(), gi, gt, (1, 3, 20))


def test_every_score_passing_the_thresholds(small_tiles) -> None:
    """Images sorted so that every later image beats every earlier one for every text: every
    score passes the running threshold, and the column update must still be exact."""
    n = 90
    img = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 2)
    txt = torch.ones(n, 2) + torch.rand(n, 2, generator=torch.Generator().manual_seed(0))
    got = recall_at_k(img, txt, score_fn=lambda a, b: a @ b.T, ks=(1, 10), chunk=30)
    ids = np.arange(n)
    assert got == brute_scores((img @ txt.T).numpy(), ids, ids, (1, 10))


def test_score_tiles_bounded_by_chunk_and_max(monkeypatch) -> None:
    monkeypatch.setattr(retrieval, "MAX_SCORE_ELEMENTS", 2000)
    shapes = []

    def score(a, b):
        shapes.append((a.shape[0], b.shape[0]))
        return a @ b.T

    x = torch.randn(130, 4, generator=torch.Generator().manual_seed(1))
    recall_at_k(x, x + 0.1, score_fn=score, chunk=50)
    assert max(r * c for r, c in shapes) <= 2000 and max(r for r, _ in shapes) <= 50
    assert sum(r * c for r, c in shapes) == 130 * 130  # every score once, for both directions


def _points(geo: str, n: int, dim: int, seed: int, dup: bool) -> tuple:
    g = torch.Generator().manual_seed(seed)
    img = 0.6 * torch.randn(n, dim, generator=g)
    txt = img + 0.6 * torch.randn(n, dim, generator=g)
    if dup:  # repeated captions: identical text points, as MAD gives
        txt[n // 2 :] = txt[: n - n // 2]
        img[-5:] = img[:5]
    geom = get_geometry(geo)
    if geo == "sphere":
        img, txt = geom.exp_map0(img), geom.exp_map0(txt)
    return img, txt


@pytest.mark.parametrize(("geo", "kwargs"), RANK_CASES)
@pytest.mark.parametrize("dup", [False, True])
def test_rank_scores_recall_equals_exact_scores(geo, kwargs, dup, small_tiles) -> None:
    """Recall from ``Objective.rank_scores`` equals recall from the exact ``similarity`` (and
    the brute-force full matrix) on random data, with and without caption groups; exact
    duplicates tie in both, so instance-level recall over repeated captions agrees too."""
    obj, c = Objective(geo, **kwargs), torch.tensor(0.8)
    img, txt = _points(geo, 150, 12, seed=len(geo) + len(str(kwargs)), dup=dup)

    def exact(a, b):
        return obj.similarity(a, b, c)

    def rank(a, b):
        return obj.rank_scores(a, b, c)

    full = exact(img, txt).numpy()
    ids = np.arange(150)
    groups = np.random.default_rng(0).integers(0, 40, 150)
    for gi, gt in ((ids, ids), (groups, groups[::-1].copy())):
        kw = {"ks": (1, 5, 10), "chunk": 23, "img_groups": gi, "txt_groups": gt}
        want = recall_at_k(img, txt, score_fn=exact, **kw)
        assert recall_at_k(img, txt, score_fn=rank, **kw) == want
        assert want == brute_scores(full, gi, gt, (1, 5, 10))


def test_model_rank_scores_pass_through() -> None:
    models = pytest.importorskip("clipspace.models")
    torch.manual_seed(0)
    model = models.create_model("meru")
    img, txt = _points("lorentz", 64, model.embed_dim, seed=2, dup=True)
    torch.testing.assert_close(model.rank_scores(img, txt),
                               model.objective.rank_scores(img, txt, model.curv()))
    want = recall_at_k(img, txt, score_fn=model.similarity, chunk=10)
    assert recall_at_k(img, txt, score_fn=model.rank_scores, chunk=10) == want
