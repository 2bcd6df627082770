"""HierarCaps protocol on hand-made cases with hand-computed answers."""

import numpy as np
import pytest
import torch

from clipspace.eval.hierarchy import (
    drop_consecutive,
    hierarcaps_metrics,
    kendall_tau_vs_rank,
    root_distance,
    specificity_correlation,
    threshold_predictions,
)


def test_kendall_tau_rows() -> None:
    tau = kendall_tau_vs_rank(np.array([[1, 2, 3, 4], [4, 3, 2, 1], [2, 1, 3, 4], [1, 1, 2, 3]]))
    assert tau[0] == 1.0 and tau[1] == -1.0
    assert tau[2] == pytest.approx((5 - 1) / 6)
    # tie in the radii: tau-b = (C - D) / sqrt(6 * 5) with C = 5, D = 0
    assert tau[3] == pytest.approx(5 / np.sqrt(30))


def test_threshold_predictions_prefix_argmax() -> None:
    rho = torch.tensor([0.0, 1.0, 2.0, 3.0])
    sims = torch.tensor([[0.1, 0.5, 0.2, 0.9]])
    idx = threshold_predictions(sims, rho, n_thresholds=4)[0].tolist()
    assert idx == [0, 1, 1, 3]
    assert drop_consecutive(["a", "a", "b", "a"]) == ["a", "b", "a"]


def test_hierarcaps_hand_made() -> None:
    # 1-D embeddings; the similarity is a fixed table so the answers can be hand-computed.
    texts = ["A", "AB", "ABC", "ABCD", "X", "XY", "XYZ", "XYZW"]
    rho = torch.tensor([1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0])
    # thresholds with n=4: 1, 2, 3, 4
    table = torch.tensor(
        [
            # image 0: at t=1 best of {A,X} = A; t=2 best of {A,AB,X,XY} = AB;
            # t=3 XYZ (0.95) wins; t=4 XYZ still wins -> preds [A, AB, XYZ] (dedupe)
            [0.5, 0.6, 0.7, 0.8, 0.1, 0.2, 0.95, 0.3],
            # image 1: X, XY, XYZ, XYZW -> all four GT
            [0.0, 0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4],
        ]
    )
    gts = [["A", "AB", "ABC", "ABCD"], ["X", "XY", "XYZ", "XYZW"]]
    gt_rho = np.array([[1, 2, 3, 4], [1, 3, 2, 4]], dtype=float)

    def sim(img, cand):
        return table[img.long().reshape(-1)]

    out = hierarcaps_metrics(torch.tensor([[0.0], [1.0]]), torch.zeros(8, 1), texts, rho, gts,
                             sim, n_thresholds=4, gt_rho=gt_rho, return_predictions=True)
    assert out["predictions"] == [["A", "AB", "XYZ"], ["X", "XY", "XYZ", "XYZW"]]
    assert out["precision"] == pytest.approx((2 / 3 + 1) / 2)
    assert out["recall"] == pytest.approx((2 / 4 + 1) / 2)
    assert out["tau_d"] == pytest.approx((1 + 4 / 6) / 2)
    # gt radii looked up from the candidates: both rows perfectly ordered
    out2 = hierarcaps_metrics(torch.tensor([[0.0], [1.0]]), torch.zeros(8, 1), texts, rho, gts,
                              sim, n_thresholds=4)
    assert out2["tau_d"] == 1.0


def test_root_distance_and_spearman() -> None:
    from clipspace.geometry import euclidean

    x = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    assert root_distance(x, euclidean).tolist() == pytest.approx([5.0, 1.0])
    assert root_distance(x, euclidean, root=torch.tensor([0.0, 1.0])).tolist() == pytest.approx(
        [np.sqrt(18), 0.0], abs=1e-6)
    assert specificity_correlation([1, 2, 3, 4], [1, 2, 3, 5]) == pytest.approx(1.0)
    assert specificity_correlation([4, 3, 2, 1], [1, 2, 3, 4]) == pytest.approx(-1.0)
