"""Recall@K against a brute-force full-matrix implementation, with and without caption groups."""

import numpy as np
import pytest
import torch

from clipspace.eval.retrieval import caption_groups, cosine_scores, recall_at_k


def brute(img, txt, gi, gt, ks, score=cosine_scores):
    s = score(torch.as_tensor(img), torch.as_tensor(txt)).numpy()
    out = {}
    for k in ks:
        top_t = np.argsort(-s, axis=1, kind="stable")[:, :k]
        out[f"i2t_r{k}"] = float(np.mean([(gt[top_t[i]] == gi[i]).any() for i in range(len(gi))]))
        top_i = np.argsort(-s.T, axis=1, kind="stable")[:, :k]
        out[f"t2i_r{k}"] = float(np.mean([(gi[top_i[j]] == gt[j]).any() for j in range(len(gt))]))
    return out


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
