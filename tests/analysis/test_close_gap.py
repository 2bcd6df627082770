"""analysis.close_gap: drop, shift and ideal-words on constructed embeddings with a known gap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clipspace.analysis.ablation import ablate_dims
from clipspace.analysis.close_gap import (
    apply_method,
    close_gap,
    drop,
    ideal_shift,
    ideal_word_cosines,
    ideal_words,
    shift,
)
from clipspace.analysis.gap import gap_stats
from clipspace.analysis.run import ablation_metric, run_analysis
from clipspace.errors import DataError
from tests.analysis.test_dims import planted


def additive(constant: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Unit rows (e_c + e_{1+v} + e_{4+w}) / sqrt(3) for every v in 0..2, w in 0..1, twice:
    exactly additive in the two factors, with the constant direction e_c."""
    rows, f1, f2 = [], [], []
    for _ in range(2):
        for v in range(3):
            for w in range(2):
                x = np.zeros(8)
                x[[constant, 1 + v, 4 + w]] = 1 / math.sqrt(3)
                rows.append(x)
                f1.append(v)
                f2.append(w)
    return np.array(rows), {"a": np.array(f1), "b": np.array(f2)}


def test_shift_zero_l2m_before_renormalising() -> None:
    img, txt = planted()
    a, b = shift(img, txt, renormalize=False)
    assert gap_stats(a, b, normalize=False)["l2m"] == pytest.approx(0.0, abs=1e-12)
    a, b = shift(img, txt)
    assert torch.allclose(a.norm(dim=1), torch.ones(len(a), dtype=a.dtype))
    assert gap_stats(a, b)["l2m"] < 0.2 * gap_stats(img, txt)["l2m"]


def test_drop_removes_the_planted_dimensions() -> None:
    img, txt = planted()
    a, b = drop(img, txt, 2)
    assert a.shape == (400, 14)
    assert gap_stats(a, b)["l2m"] < 0.1 * gap_stats(img, txt)["l2m"]
    assert gap_stats(a, b)["l2m"] == pytest.approx(ablate_dims(img, txt, ks=[2])["l2m"][0])
    with pytest.raises(ValueError, match="k must be in 1..15"):
        drop(img, txt, 16)


def test_ideal_words_recover_an_additive_structure() -> None:
    x, factors = additive(0)
    iw = ideal_words(x, factors)
    s = 1 / math.sqrt(3)
    want_u0 = np.zeros(8)
    want_u0[0], want_u0[1:4], want_u0[4:6] = s, s / 3, s / 2
    assert np.allclose(iw.u0.numpy(), want_u0)
    assert np.allclose(iw.words["a"][1].numpy()[1:4], [-s / 3, 2 * s / 3, -s / 3])
    recon = iw.u0 + iw.words["a"][factors["a"]] + iw.words["b"][factors["b"]]
    assert np.allclose(recon.numpy(), x)


def test_ideal_words_place_the_gap_in_u0() -> None:
    img, factors = additive(0)
    txt, _ = additive(7)  # same meanings, another constant direction: a pure modality gap
    cos = ideal_word_cosines(img, txt, factors)
    assert cos["without_u0"] == pytest.approx(1.0)
    assert cos["with_u0"] < 0.9
    a, b = ideal_shift(img, txt, factors)
    assert torch.allclose(a, b)  # u_0 removed: the modalities coincide
    assert gap_stats(a, b)["rmg"] == pytest.approx(0.0, abs=1e-9)


def test_close_gap_before_after_and_errors() -> None:
    img, txt = planted(n=60)
    labels = {"digit": np.arange(60) % 4}
    res = close_gap(img, txt, k=2, factors=labels, metric_fn=ablation_metric(labels))
    assert set(res["methods"]) == {"drop", "shift", "ideal-words"}
    for m in res["methods"].values():
        for key, v in m["after"].items():
            assert m["change"][key] == pytest.approx(v - res["before"][key])
        assert m["after"]["rmg"] < res["before"]["rmg"]
    assert res["methods"]["drop"]["k"] == 2 and "digit_acc" in res["before"]
    with pytest.raises(ValueError, match="unknown gap-closing method"):
        apply_method("nope", img, txt)
    with pytest.raises(ValueError, match="needs factor labels"):
        apply_method("ideal-words", img, txt)


def test_run_analysis_close_gap(tmp_path) -> None:
    img, txt = planted(n=60)
    res = run_analysis("close-gap", img, txt, plot_dir=tmp_path, drop_k=2)
    assert set(res["methods"]) == {"drop", "shift"} and "ideal-words skipped" in res["notes"][0]
    assert (tmp_path / "close_gap.png").exists()
    with pytest.raises(DataError, match="--drop-k"):
        run_analysis("close-gap", img, txt, drop_k=16)
    with pytest.raises(DataError, match="needs factor labels"):
        run_analysis("close-gap", img, txt, method="ideal-words")
    with pytest.raises(DataError, match="--method"):
        run_analysis("close-gap", img, txt, method="nope")
