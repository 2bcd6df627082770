"""analysis.dims: the per-dimension view finds a gap planted in known dimensions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipspace.analysis.dims import (
    dims_analysis,
    gap_share,
    random_dims_accuracy,
    separation_accuracy,
    top_mean_dims,
)
from clipspace.analysis.run import run_analysis


def planted(n: int = 400, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images offset by +1 in dimension 3, texts by +1 in dimension 7, small shared noise."""
    rng = np.random.default_rng(seed)
    base = rng.normal(scale=0.1, size=(n, d))
    img, txt = base + rng.normal(scale=0.05, size=(n, d)), base.copy()
    img[:, 3] += 1.0
    txt[:, 7] += 1.0
    return img.astype(np.float32), txt.astype(np.float32)


def test_planted_dimensions_are_found_and_separate() -> None:
    img, txt = planted()
    res = dims_analysis(img, txt, draws=10)
    assert res["pair"] == [3, 7]
    assert {r["dim"] for r in res["ranking"][:2]} == {3, 7}
    assert res["separation"]["pair"] == 1.0
    assert res["separation"]["random"]["mean"] < 0.9
    assert res["gap_share"]["2"] > 0.95 and res["uniform_share"]["2"] == 2 / 16
    assert len(res["mean_image"]) == 16 and res["mean_image"][3] > 0.9


def test_same_distribution_is_chance() -> None:
    rng = np.random.default_rng(1)
    img = rng.normal(size=(2000, 8))
    txt = rng.normal(size=(2000, 8))
    assert separation_accuracy(img, txt, [0, 1]) == pytest.approx(0.5, abs=0.05)
    same = np.ones((10, 4))
    assert separation_accuracy(same, same, [0, 1]) == 0.5  # every point a tie
    assert random_dims_accuracy(img, txt, draws=3)["draws"] == 3


def test_pair_when_both_modalities_peak_in_one_dimension() -> None:
    assert top_mean_dims(torch.tensor([0.1, 0.9, 0.3]), torch.tensor([0.2, 0.8, 0.5])) == [1, 2]


def test_gap_share() -> None:
    share = gap_share(torch.tensor([3.0, 0.0, 4.0, 0.0]), ks=(1, 2, 9))
    assert share == {"1": pytest.approx(16 / 25), "2": pytest.approx(1.0)}
    assert gap_share(torch.zeros(3), ks=(1,)) == {"1": 0.0}


def test_run_analysis_dims_figures(tmp_path) -> None:
    img, txt = planted(n=50)
    res = run_analysis("dims", img, txt, plot_dir=tmp_path)
    assert res["pair"] == [3, 7] and res["n"] == 50
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "dim_means.png", "dim_scatter.png", "mean_difference.png"]
