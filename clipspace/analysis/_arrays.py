"""Array helpers shared by the analysis metrics: accept numpy (memory-mapped too) or torch input
and iterate over row chunks as float32/float64 torch tensors, so nothing of size N x N (or a full
float64 copy of N x D) is ever built. Rows at extreme scales (float32 values near 1e30 or 1e-30,
whose squares overflow or underflow) give the numbers of the same vectors at normal scale
(``safe_rows``, ``normalize_rows``); labels with any integer ids are re-indexed to 0..K-1
(``dense_labels``) before they are used as indices."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

ArrayLike = Any  # np.ndarray | np.memmap | torch.Tensor

DEFAULT_CHUNK = 65536


def n_rows(x: ArrayLike) -> int:
    return int(x.shape[0])


def to_tensor(x: ArrayLike, dtype: torch.dtype = torch.float32) -> Tensor:
    """A CPU tensor view/copy of ``x`` in ``dtype`` (float64 input stays float64)."""
    if isinstance(x, Tensor):
        t = x.detach().cpu()
    else:
        a = np.ascontiguousarray(x)
        if not a.flags.writeable:  # memory-mapped / read-only: copy (one chunk at a time)
            a = np.array(a)
        t = torch.from_numpy(a)
    if t.dtype == torch.float64 and dtype == torch.float32:
        return t
    return t.to(dtype) if t.is_floating_point() or dtype.is_floating_point else t


def chunks(x: ArrayLike, chunk: int = DEFAULT_CHUNK) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(start, rows)`` for consecutive row blocks of ``x`` as float tensors."""
    n = n_rows(x)
    chunk = max(1, int(chunk))
    for s in range(0, n, chunk):
        yield s, to_tensor(x[s : s + chunk])


def np_chunks(x: ArrayLike, chunk: int = DEFAULT_CHUNK) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, rows)`` row blocks as float32 (or float64) numpy arrays, without copies
    where possible. numpy's einsum row-dots are much faster than torch's elementwise kernels on
    small CPUs, which is what makes N = 1e6, D = 512 take seconds."""
    n = n_rows(x)
    chunk = max(1, int(chunk))
    for s in range(0, n, chunk):
        b = x[s : s + chunk]
        if isinstance(b, Tensor):
            b = b.detach().cpu()
            b = b.numpy() if b.dtype in (torch.float32, torch.float64) else b.float().numpy()
        b = np.asarray(b)
        if b.dtype not in (np.float32, np.float64):
            b = b.astype(np.float32)
        yield s, b


#: float32 squared row norms below this may have lost digits to underflow (values < ~1e-15)
TINY_SQ = 1e-30


def safe_rows(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, |rows|^2)``: a float32 chunk whose squared norms overflow (values near 1e30)
    or underflow (values near 1e-30) comes back as float64, where they do not, so every
    product taken of it afterwards gives the numbers of the same vectors at normal scale. The
    squared norms are float64. Costs one einsum row-dot; no copy in the usual case."""
    sq = np.einsum("ij,ij->i", b, b)
    if b.dtype == np.float32 and _lost_digits(b, sq):
        b = b.astype(np.float64)
        sq = np.einsum("ij,ij->i", b, b)
    return b, sq.astype(np.float64, copy=False)


def _lost_digits(b: np.ndarray, sq: np.ndarray) -> bool:
    """Whether float32 squared norms ``sq`` of rows ``b`` overflowed or underflowed (a zero
    norm of a row that is not all zeros included)."""
    if not np.isfinite(sq).all() or ((sq > 0) & (sq < TINY_SQ)).any():
        return True
    zero = sq == 0
    return bool(zero.any() and np.any(b[zero]))


def safe_chunks(x: ArrayLike, chunk: int = DEFAULT_CHUNK
                ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``np_chunks`` through ``safe_rows``: ``(start, rows, |rows|^2)``."""
    for s, b in np_chunks(x, chunk):
        yield s, *safe_rows(b)


def inv_norms(sq: np.ndarray) -> np.ndarray:
    """1 / |x_i| from squared norms (``safe_rows``), 0 for a zero row: no absolute clamp, so
    tiny rows are scaled like any other."""
    norms = np.sqrt(sq)
    return np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)


def normalize_rows(x: Tensor, eps: float = 1e-12) -> Tensor:
    """x / max(|x|, eps) row-wise, each row first divided by its largest |value| so that huge
    (1e30) or tiny (1e-30) float32 rows give the unit vectors of the same directions."""
    scale = x.abs().amax(dim=-1, keepdim=True)
    x = x / torch.where(scale > 0, scale, torch.ones_like(scale))
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def as_labels(y: ArrayLike) -> np.ndarray:
    """Integer label vector (N,) as numpy int64."""
    if isinstance(y, Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be a vector, got shape {y.shape}")
    return y.astype(np.int64, copy=False)


def dense_labels(*ys: ArrayLike) -> tuple[list[np.ndarray], np.ndarray]:
    """Label vectors re-indexed together to 0..K-1 (any ids: negative, or near 1e12, which as
    indices would allocate K rows), and the K distinct ids in sorted order:
    ``values[codes] == labels``."""
    labs = [as_labels(y) for y in ys]
    values = np.unique(np.concatenate(labs)) if labs else np.zeros(0, np.int64)
    return [np.searchsorted(values, y).astype(np.int64) for y in labs], values
