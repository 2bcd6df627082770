"""Dimension ablation: order, removal and the curve."""

import numpy as np
import torch

from clipspace.analysis.ablation import ablate_dims, dimension_order, drop_dims
from clipspace.analysis.gap import gap_stats


def test_ablation_removes_gap_dimensions_first() -> None:
    rng = np.random.default_rng(0)
    n, d = 200, 16
    img = rng.normal(size=(n, d)).astype(np.float32)
    txt = img + 0.1 * rng.normal(size=(n, d)).astype(np.float32)
    img[:, 3] += 5.0  # the gap lives in dims 3 and 9
    txt[:, 9] += 4.0
    order = dimension_order(img, txt)
    assert set(order[:2].tolist()) == {3, 9}
    calls = []

    def metric(a, b):
        calls.append(a.shape[1])
        return {"cos": float((a * b).sum(1).mean())}

    curve = ablate_dims(img, txt, ks=range(4), metric_fn=metric)
    assert curve["k"] == [0, 1, 2, 3]
    assert calls == [16, 15, 14, 13]
    assert curve["rmg"][2] < 0.2 * curve["rmg"][0]
    assert curve["cos"][2] > curve["cos"][0]
    x = torch.from_numpy(img)
    reduced = drop_dims(x, order[:2])
    assert torch.allclose(reduced.norm(dim=1), torch.ones(n), atol=1e-5)
    want = gap_stats(reduced, drop_dims(torch.from_numpy(txt), order[:2]))["l2m"]
    assert abs(curve["l2m"][2] - want) < 1e-6
