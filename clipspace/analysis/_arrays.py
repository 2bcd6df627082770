"""Array helpers shared by the analysis metrics: accept numpy (memory-mapped too) or torch input
and iterate over row chunks as float32/float64 torch tensors, so nothing of size N x N (or a full
float64 copy of N x D) is ever built."""

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


def row_norms(b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """|b_i| (clamped >= eps), via einsum (no temporary of b's size)."""
    return np.maximum(np.sqrt(np.einsum("ij,ij->i", b, b)), eps)


def normalize_rows(x: Tensor, eps: float = 1e-12) -> Tensor:
    """x / max(|x|, eps) row-wise."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def as_labels(y: ArrayLike) -> np.ndarray:
    """Integer label vector (N,) as numpy int64."""
    if isinstance(y, Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be a vector, got shape {y.shape}")
    return y.astype(np.int64, copy=False)
