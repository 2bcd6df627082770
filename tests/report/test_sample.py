"""embeddings_sample.npz round trip and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from clipspace.errors import ClipspaceError
from clipspace.report.sample import EmbeddingSample, sample_rows, take_sample
from tests.helpers.report import random_sample


def test_round_trip(tmp_path):
    s = random_sample("lorentz", curv=0.5)
    back = EmbeddingSample.load(s.save(tmp_path / "s.npz"))
    np.testing.assert_allclose(back.image, s.image, rtol=1e-6)
    np.testing.assert_allclose(back.root_dist_text, s.root_dist_text, rtol=1e-6)
    assert back.captions == s.captions and back.geometry == "lorentz" and back.curv == 0.5
    assert sorted(back.labels) == ["digit", "index"]
    np.testing.assert_array_equal(back.labels["digit"], s.labels["digit"])


def test_sample_rows_and_take():
    rows = sample_rows(100, 10, seed=0)
    assert len(set(rows)) == 10 and list(rows) == sorted(rows) and rows.max() < 100
    assert list(sample_rows(5, 10)) == [0, 1, 2, 3, 4]
    x = np.arange(20.0).reshape(10, 2)
    got = take_sample(x, -x, [str(i) for i in range(10)], {"digit": np.arange(10)},
                      np.array([1, 7]))
    assert got["captions"] == ["1", "7"] and list(got["labels"]["digit"]) == [1, 7]
    np.testing.assert_array_equal(got["text"], -x[[1, 7]])


def test_not_a_sample_names_file_and_missing_keys(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, image=np.zeros((2, 2)))
    with pytest.raises(ClipspaceError, match=r"x\.npz.*missing"):
        EmbeddingSample.load(path)
