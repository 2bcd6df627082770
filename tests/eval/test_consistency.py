"""Consistency-rule retrieval on MAD: a caption matches an image when every attribute it names
holds for the image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipspace.eval.consistency import caption_table, consistency_recall
from clipspace.eval.retrieval import caption_groups, recall_at_k


def _labels(rows: list[dict[str, int]]) -> dict[str, np.ndarray]:
    keys = ("digit", "stroke", "swelling", "fracture", "scale", "colour")
    return {k: np.array([r.get(k, 0) for r in rows]) for k in keys}


def test_caption_table_marks_unnamed_slots() -> None:
    t = caption_table(["3-red", "thinning-7"])
    assert t[0, 0] == 3 and t[0, 5] >= 0 and (t[0, 1:5] == -1).all()
    assert t[1, 0] == 7 and t[1, 1] >= 0 and (t[1, 2:] == -1).all()


def test_consistency_hits_by_hand() -> None:
    # images: a red 3, a blue 3, a red 5; their captions "3-red", "3", "5"
    from clipspace.data.captions import parse_caption

    captions = ["3-red", "3", "5"]
    rows = [{**parse_caption("3-red")}, {"digit": 3, "colour": parse_caption("3-blue")["colour"]},
            {"digit": 5, "colour": parse_caption("5-red")["colour"]}]
    labels = _labels(rows)
    # score[i, j] = img_i . txt_j = T[j, i]: every image prefers caption 1 ("3"), then 0, then
    # 2; every caption prefers image 0, then 1, then 2
    base, tiny = torch.tensor([0.5, 1.0, 0.0]), torch.tensor([0.03, 0.02, 0.01])
    img, txt = torch.eye(3), base[:, None] + tiny[None, :]
    res = consistency_recall(img, txt, captions, labels, lambda a, b: a @ b.T, ks=(1, 2, 3))
    # i2t: "3" is true of the red 3 and the blue 3, and "3"/"3-red" are both false of the 5
    assert res["consistent_i2t_r1"] == pytest.approx(2 / 3)
    assert res["consistent_i2t_r2"] == pytest.approx(2 / 3)
    assert res["consistent_i2t_r3"] == pytest.approx(1.0)
    # t2i: image 0 (red 3) fits "3-red" and "3"; "5" finds its image only at rank 3
    assert res["consistent_t2i_r1"] == pytest.approx(2 / 3)
    assert res["consistent_t2i_r2"] == pytest.approx(2 / 3)
    assert res["consistent_t2i_r3"] == pytest.approx(1.0)


def test_consistency_at_least_exact_recall() -> None:
    g = torch.Generator().manual_seed(0)
    from clipspace.data.captions import caption as make_caption

    rng = np.random.default_rng(0)
    rows, captions = [], []
    for _ in range(60):
        lab = {"digit": int(rng.integers(10)), "stroke": int(rng.integers(3)),
               "swelling": int(rng.integers(2)), "fracture": int(rng.integers(2)),
               "scale": int(rng.integers(2)), "colour": int(rng.integers(7))}
        rows.append(lab)
        captions.append(make_caption(lab, ["colour"], rng))
    img, txt = torch.randn(60, 8, generator=g), torch.randn(60, 8, generator=g)
    score = lambda a, b: a @ b.T  # noqa: E731
    gi, gt = caption_groups(captions)
    exact = recall_at_k(img, txt, score_fn=score, img_groups=gi, txt_groups=gt)
    cons = consistency_recall(img, txt, captions, _labels(rows), score)
    for d in ("i2t", "t2i"):
        for k in (1, 5, 10):
            assert cons[f"consistent_{d}_r{k}"] >= exact[f"{d}_r{k}"] - 1e-12
