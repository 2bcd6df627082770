"""Scene evaluation (``clipspace.eval.scenes``): the embedding pass and both metrics on a tiny
MAD-scenes directory with a tiny untrained model (shapes, ranges), and the metrics on
hand-built inputs whose answers are known (AP, oracle-k F1, cone membership, AUC)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from clipspace.data import mad_scenes_generate as G
from clipspace.data.mad_scenes import MadScenes
from clipspace.eval import scenes as SC
from clipspace.geometry import euclidean, lorentz, sphere
from tests.helpers.configs import TINY
from tests.helpers.mad import write_mad

N_TRAIN, N_TEST = 8, 12


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mad = write_mad(tmp_path_factory.mktemp("scenes_eval") / "mad", n_digits=6, test_digits=2)
    return G.generate_mad_scenes(mad, mad.parent / "scenes", seed=1, num_train=N_TRAIN,
                                 num_test=N_TEST, num_attrs=2, progress=False)


@pytest.fixture(scope="module")
def tokenizer(scenes_dir: Path):
    from clipspace.data.tokenizer import get_tokenizer

    return get_tokenizer(scenes_dir, context_length=TINY["model.text.context_length"])


def _in01(x: float) -> bool:
    return 0.0 <= x <= 1.0


@pytest.mark.parametrize("preset", ["meru", "clip"])
def test_tiny_model_end_to_end(preset: str, scenes_dir: Path, tokenizer) -> None:
    from clipspace.models import create_model

    torch.manual_seed(0)
    model = create_model(preset, **TINY)
    model.train()
    ds = MadScenes(scenes_dir, split="test", crop_size=28, image_size=28)
    emb = SC.embed_scenes(model, ds, tokenizer, batch_size=5, progress=False)
    assert model.training  # mode restored
    n, m, d = len(ds), sum(len(ds.box_texts(i)) for i in range(len(ds))), 32
    assert emb.image.shape == (n, d) and emb.text.shape == (n, d)
    assert emb.box_image.shape == (m, d) and emb.box_text.shape == (m, d)
    assert emb.box_scene.shape == (m,) and emb.digits.shape == (n, 10)
    assert emb.num_attrs == 2
    want = np.zeros((n, 10), dtype=bool)
    for i in range(n):
        want[i, ds[i]["box_digit"].numpy()] = True
    np.testing.assert_array_equal(emb.digits, want)
    assert np.array_equal(np.bincount(emb.box_scene, minlength=n),
                          [len(ds.box_texts(i)) for i in range(n)])
    # batching does not change the points (eval mode, deterministic)
    emb2 = SC.embed_scenes(model, ds, tokenizer, batch_size=256, progress=False)
    assert torch.allclose(emb.image, emb2.image, atol=1e-5)
    assert torch.allclose(emb.box_text, emb2.box_text, atol=1e-5)

    res = SC.evaluate_scenes(model, f"scenes:{scenes_dir}", tokenizer, progress=False)
    assert res["n"] == n and res["n_boxes"] == m
    mo = res["multi_object"]
    for key in ("map", "map_chance", "top1", "f1", "f1_best_k", "image_ap"):
        assert _in01(mo[key]), (key, mo[key])
    assert mo["f1"] <= mo["f1_best_k"] + 1e-12
    assert all(_in01(v) for v in mo["ap"].values())
    pw = res["part_whole"]
    if preset == "clip":
        assert pw == {"skipped": "the sphere has no entailment cones"}
    else:
        assert pw["apex"] == "box" and pw["n_boxes"] == m
        for mod in ("image", "text"):
            r = pw[mod]
            assert _in01(r["inside"]) and _in01(r["random"]["inside"]) and _in01(r["auc"])
    # max_samples: a seeded subset of scenes
    sub = SC.embed_scenes(model, ds, tokenizer, max_samples=5, progress=False)
    assert len(sub) == 5 and sub.positions.shape == (5,)


# ---------------------------------------------------------------- metrics on hand cases


def test_average_precision_hand_cases() -> None:
    assert SC.average_precision([0.9, 0.8, 0.1, 0.0], [1, 1, 0, 0]) == 1.0
    # ranks 1 and 3 are positive: (1/1 + 2/3) / 2
    assert SC.average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(5 / 6)
    # all tied: one step at recall 1 with precision 2/4
    assert SC.average_precision([1, 1, 1, 1], [1, 0, 1, 0]) == pytest.approx(0.5)
    assert np.isnan(SC.average_precision([1, 2], [0, 0]))
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(5):
        s = rng.integers(0, 5, 40).astype(float)  # many ties
        y = rng.random(40) < 0.3
        assert SC.average_precision(s, y) == pytest.approx(sk.average_precision_score(y, s))


def test_multilabel_f1_rule_hand_case() -> None:
    # 3 images, 4 classes
    targets = np.array([[1, 1, 0, 0],    # k = 2; top-2 = {0, 2}: F1 = 1/2
                        [0, 0, 0, 1],    # k = 1; top-1 = {3}: F1 = 1
                        [0, 1, 1, 1]],   # k = 3; top-3 = {0, 1, 2}: F1 = 2/3
                       dtype=bool)
    scores = np.array([[0.9, 0.1, 0.8, 0.0],
                       [0.1, 0.2, 0.3, 0.4],
                       [0.9, 0.8, 0.7, 0.6]])
    out = SC.multilabel_metrics(scores, targets)
    assert out["f1"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    assert out["top1"] == pytest.approx(2 / 3)  # image 2's top class (0) is absent
    # best k: image 0 top-3 {0,2,1} -> 2*2/(3+2) = 0.8; image 1: 1; image 2: top-4 -> 6/7
    assert out["f1_best_k"] == pytest.approx((0.8 + 1 + 6 / 7) / 3)
    # per-image AP: img0 positives at ranks 1, 3: 5/6; img1: 1; img2 at ranks 2,3,4
    assert out["image_ap"] == pytest.approx((5 / 6 + 1 + (1 / 2 + 2 / 3 + 3 / 4) / 3) / 3)
    # class APs: class 0 positive only in image 0 (top score among 0.9, 0.1, 0.9 ties -> 1/2)
    assert out["ap"]["0"] == pytest.approx(0.5)
    assert out["classes_present"] == 4
    assert out["map"] == pytest.approx(np.mean(list(out["ap"].values())))
    assert out["map_chance"] == pytest.approx(np.mean([1 / 3, 2 / 3, 1 / 3, 2 / 3]))
    perfect = SC.multilabel_metrics(targets.astype(float), targets)
    assert perfect["map"] == perfect["f1"] == perfect["top1"] == perfect["image_ap"] == 1.0


def test_digit_sets_and_prompts() -> None:
    sets = SC.digit_sets([0, 0, 1, 2, 2], [3, 3, 7, 0, 9], 4)
    assert sets.sum() == 4 and sets[0, 3] and sets[1, 7] and sets[2, [0, 9]].all()
    assert not sets[3].any()
    assert SC.digit_prompts(0, ["a {}"]) == [[f"a {d}"] for d in range(10)]
    p = SC.digit_prompts(2)
    assert len(p) == 10 and all(any(str(d) in t.split("-") for t in p[d]) for d in range(10))


def test_roc_auc_and_random_other() -> None:
    assert SC.roc_auc([3, 4], [1, 2]) == 1.0
    assert SC.roc_auc([1, 2], [3, 4]) == 0.0
    # pairs (1,2) (1,3) (3,2) (3,3): 0 + 0 + 1 + 1/2
    assert SC.roc_auc([1, 3], [2, 3]) == pytest.approx(1.5 / 4)
    scene = np.repeat(np.arange(5), 20)
    other = SC.random_other(scene, 5, seed=0)
    assert (other != scene).all() and other.min() >= 0 and other.max() < 5
    np.testing.assert_array_equal(other, SC.random_other(scene, 5, seed=0))


# ---------------------------------------------------------------- cones on hand-built points


def _fake(geometry, curv: float = 1.0):
    return SimpleNamespace(geometry=geometry, curv=lambda: torch.tensor(curv))


def _hand_embeddings(d: int = 6, n: int = 8, seed: int = 0) -> SC.SceneEmbeddings:
    """One box per scene; the scene point lies on the ray from O through its box point, twice as
    far (inside the box's cone: ext angle 0); scenes point in well-separated directions (so a
    random OTHER scene is far outside every box's narrow cone)."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.linalg.qr(torch.randn(d, d, generator=g))[0][:, : n // 2].T  # orthonormal
    dirs = torch.cat([dirs, -dirs])  # n directions, pairwise >= 90 degrees apart
    box = 1.5 * dirs
    scene = 3.0 * dirs
    return SC.SceneEmbeddings(image=scene, text=scene.clone(), box_image=box,
                              box_text=box.clone(), box_scene=np.arange(n),
                              box_digit=np.arange(n) % 10, digits=SC.digit_sets(
                                  np.arange(n), np.arange(n) % 10, n))


@pytest.mark.parametrize("geometry", [lorentz, euclidean])
def test_cone_membership_hand_points(geometry) -> None:
    emb = _hand_embeddings()
    out = SC.part_whole_entailment(_fake(geometry), emb, seed=0)
    for mod in ("image", "text"):
        r = out[mod]
        assert r["inside"] == 1.0 and r["true"]["mean_ext_angle"] < 1e-2  # float32 acos near 1
        assert r["random"]["inside"] == 0.0 and r["random"]["mean_ext_angle"] > np.pi / 2 - 1e-2
        assert r["auc"] == 1.0 and r["gap"] == 1.0
    # the reverse direction: the box lies BEHIND the scene seen from O (ext angle pi)
    rev = SC.part_whole_entailment(_fake(geometry), emb, apex="scene")
    assert rev["apex"] == "scene" and rev["image"]["inside"] == 0.0
    assert rev["image"]["true"]["mean_ext_angle"] > np.pi - 1e-2
    # swapping parts and wholes makes the reverse direction the inside one
    swapped = SC.SceneEmbeddings(image=emb.box_image, text=emb.box_text, box_image=emb.image,
                                 box_text=emb.text, box_scene=emb.box_scene,
                                 box_digit=emb.box_digit, digits=emb.digits)
    assert SC.part_whole_entailment(_fake(geometry), swapped, apex="scene")["text"][
        "inside"] == 1.0


def test_cone_matches_direct_formula() -> None:
    g = torch.Generator().manual_seed(3)
    n = 10
    emb = SC.SceneEmbeddings(image=torch.randn(n, 4, generator=g),
                             text=torch.randn(n, 4, generator=g),
                             box_image=torch.randn(2 * n, 4, generator=g),
                             box_text=torch.randn(2 * n, 4, generator=g),
                             box_scene=np.repeat(np.arange(n), 2),
                             box_digit=np.zeros(2 * n, dtype=np.int64),
                             digits=np.zeros((n, 10), dtype=bool))
    out = SC.part_whole_entailment(_fake(lorentz, 0.7), emb, seed=5, eta=1.2, min_radius=0.3)
    own = torch.from_numpy(emb.box_scene)
    ext = lorentz.ext_angle(emb.box_image, emb.image[own], 0.7)
    aper = 1.2 * lorentz.half_aperture(emb.box_image, 0.7, min_radius=0.3)
    assert out["image"]["inside"] == pytest.approx(float((ext <= aper).double().mean()))
    assert out["image"]["true"]["mean_margin"] == pytest.approx(float((ext - aper).mean()),
                                                                abs=1e-5)
    other = torch.from_numpy(SC.random_other(emb.box_scene, n, 5))
    ext_r = lorentz.ext_angle(emb.box_text, emb.text[other], 0.7)
    aper_r = 1.2 * lorentz.half_aperture(emb.box_text, 0.7, min_radius=0.3)
    assert out["text"]["random"]["inside"] == pytest.approx(
        float((ext_r <= aper_r).double().mean()))


def test_sphere_is_skipped_and_bad_apex() -> None:
    emb = _hand_embeddings()
    assert SC.part_whole_entailment(_fake(sphere), emb) == {
        "skipped": "the sphere has no entailment cones"}
    with pytest.raises(ValueError, match="apex"):
        SC.part_whole_entailment(_fake(lorentz), emb, apex="whole")
