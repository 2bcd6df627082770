"""Loading embeddings/labels from every supported format; clear errors naming file and keys."""

import numpy as np
import pytest
import torch

from clipspace.data.embeddings_io import load_embeddings, load_labels, read_arrays, save_arrays
from clipspace.errors import DataError


@pytest.mark.parametrize("suffix", [".npz", ".pt", ".safetensors"])
def test_roundtrip(tmp_path, suffix: str) -> None:
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    y = np.arange(5)
    p = save_arrays(tmp_path / f"e{suffix}", {"image": x, "text": x + 1, "digit": y})
    assert np.allclose(load_embeddings(p, "image"), x)
    assert np.allclose(load_embeddings(p, "text"), x + 1)
    labels = load_labels(p)
    assert list(labels) == ["digit"] and np.array_equal(labels["digit"], y)
    assert set(read_arrays(p)) == {"image", "text", "digit"}


def test_npy_and_torch_single_tensor(tmp_path) -> None:
    x = np.ones((4, 2), np.float32)
    np.save(tmp_path / "a.npy", x)
    torch.save(torch.ones(4, 2), tmp_path / "b.pt")
    assert load_embeddings(tmp_path / "a.npy").shape == (4, 2)
    assert load_embeddings(tmp_path / "b.pt").shape == (4, 2)
    np.save(tmp_path / "y.npy", np.array([0, 1, 1, 0]))
    assert list(load_labels(tmp_path / "y.npy")["label"]) == [0, 1, 1, 0]


def test_errors_name_file_and_keys(tmp_path) -> None:
    p = save_arrays(tmp_path / "e.npz", {"a": np.ones((3, 2)), "b": np.ones((3, 2))})
    with pytest.raises(DataError, match=r"e\.npz.*keys found: \['a', 'b'\]"):
        load_embeddings(p)
    with pytest.raises(DataError, match="no key 'zzz'"):
        load_embeddings(p, "zzz")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="bad.pt"):
        load_embeddings(bad)
    with pytest.raises(DataError, match="not found"):
        load_embeddings(tmp_path / "missing.npy")
    with pytest.raises(DataError, match="unsupported"):
        (tmp_path / "x.txt").write_text("1")
        load_embeddings(tmp_path / "x.txt")
    with pytest.raises(DataError, match="2-D float"):
        np.save(tmp_path / "v.npy", np.arange(3))
        load_embeddings(tmp_path / "v.npy")
