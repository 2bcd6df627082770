"""Load embeddings and labels produced by any model, and save them atomically.

Formats: ``.npy`` (one array), ``.npz``, ``.pt``/``.pth`` (a tensor, an array, or a dict of them),
``.safetensors``. A file holding several arrays is read by key: the given ``key``, else the only
2-D array, else the first of the usual names (``image``, ``text``, ``embeddings``, ...). Errors are
``DataError`` naming the file and the keys found; embeddings with no rows, no columns, or rows
holding NaN / Inf (``check_embeddings``: how many rows) are errors too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from clipspace.errors import DataError
from clipspace.io import atomic_save

EMB_KEYS = ("embeddings", "embedding", "emb", "features", "image", "text", "image_emb", "text_emb")
SUFFIXES = (".npy", ".npz", ".pt", ".pth", ".safetensors")


def _to_numpy(v: Any) -> np.ndarray | None:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu()
        return v.float().numpy() if v.dtype in (torch.bfloat16, torch.float16) else v.numpy()
    if isinstance(v, np.ndarray):
        return v
    if isinstance(v, (list, tuple)) and v and all(isinstance(e, (int, float)) for e in v):
        return np.asarray(v)
    return None


def read_arrays(path: str | Path, mmap: bool = True) -> dict[str, np.ndarray]:
    """All arrays in a file as ``{key: array}`` (a single-array file gives key ``""``)."""
    p = Path(path)
    if p.is_dir():  # a directory of .npy files (clipspace embed --out DIR)
        files = sorted(p.glob("*.npy"))
        if not files:
            raise DataError(f"{p}: no .npy files in this directory")
        return {f.stem: np.load(f, mmap_mode="r" if mmap else None, allow_pickle=False)
                for f in files}
    if not p.is_file():
        raise DataError(f"{p}: embedding file not found")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            return {"": np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)}
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files if not k.startswith("__text__")}
        if suffix in (".pt", ".pth"):
            obj = torch.load(p, map_location="cpu", weights_only=True)
            if isinstance(obj, Mapping):
                out = {str(k): a for k, v in obj.items() if (a := _to_numpy(v)) is not None}
                if not out:
                    raise DataError(f"{p}: no tensors found (keys: {sorted(map(str, obj))})")
                return out
            a = _to_numpy(obj)
            if a is None:
                raise DataError(f"{p}: expected a tensor or a dict of tensors, got "
                                f"{type(obj).__name__}")
            return {"": a}
        if suffix == ".safetensors":
            return dict(load_file(str(p)))
    except DataError:
        raise
    except Exception as err:  # corrupt or unreadable file
        raise DataError(f"{p}: cannot read {suffix} file ({type(err).__name__}: {err})") from err
    raise DataError(f"{p}: unsupported embedding file type {suffix!r} (use one of {SUFFIXES})")


def read_texts(path: str | Path) -> dict[str, str]:
    """The strings ``save_arrays(..., texts=)`` stored in a file (empty if none)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir():  # captions.json, meta.json, ... of an embedding directory
        return {f.stem: f.read_text(encoding="utf-8") for f in sorted(p.glob("*.json"))}
    try:
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                return {k[8:]: str(z[k]) for k in z.files if k.startswith("__text__")}
        if suffix in (".pt", ".pth"):
            obj = torch.load(p, map_location="cpu", weights_only=True)
            return {k[8:]: str(v) for k, v in obj.items()
                    if isinstance(k, str) and k.startswith("__text__")} if isinstance(
                        obj, Mapping) else {}
        if suffix == ".safetensors":
            with safe_open(str(p), framework="numpy") as fh:
                return dict(fh.metadata() or {})
    except Exception as err:  # corrupt or unreadable file
        raise DataError(f"{p}: cannot read {suffix} file ({type(err).__name__}: {err})") from err
    return {}


def load_embeddings(path: str | Path, key: str | None = None, mmap: bool = True) -> np.ndarray:
    """An (N, D) float array from ``path`` (see module docstring for key selection)."""
    arrays = read_arrays(path, mmap=mmap)
    found = sorted(k for k in arrays if k)
    if key:
        if key not in arrays:
            raise DataError(f"{path}: no key {key!r} (keys found: {found})")
        arr = arrays[key]
    elif len(arrays) == 1:
        arr = next(iter(arrays.values()))
    else:
        two_d = [k for k, v in arrays.items() if v.ndim == 2]
        named = [k for k in EMB_KEYS if k in arrays]
        if len(two_d) == 1:
            arr = arrays[two_d[0]]
        elif named:
            arr = arrays[named[0]]
        else:
            raise DataError(f"{path}: several arrays and none named like embeddings; pass a key "
                            f"(keys found: {found})")
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"{path}: embeddings must be a 2-D float array, got shape {arr.shape} "
                        f"dtype {arr.dtype} (keys found: {found})")
    name = next((k for k, v in arrays.items() if v is arr), "")
    check_embeddings(arr, f"{path}, key {name!r}" if name and len(arrays) > 1 else str(path))
    return arr


def nonfinite_rows(arr: Any, chunk: int = 65536) -> int:
    """How many rows of a 2-D array (numpy, memory-mapped or torch) hold a NaN or an Inf; one
    pass in row chunks."""
    bad = 0
    for s in range(0, int(arr.shape[0]), chunk):
        b = arr[s : s + chunk]
        b = b.detach().cpu().float().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
        bad += int((~np.isfinite(b)).any(axis=1).sum())
    return bad


def check_embeddings(arr: Any, what: str) -> None:
    """DataError naming ``what`` (a file, or "image embeddings") unless ``arr`` is an (N, D)
    array with N >= 1 rows, D >= 1 columns and no NaN or Inf (the error gives how many rows
    hold one)."""
    shape = tuple(arr.shape)
    if len(shape) != 2:
        raise DataError(f"{what}: embeddings must be a 2-D (N, D) array, got shape {shape}")
    if shape[0] == 0:
        raise DataError(f"{what}: no rows (shape {shape}): no embeddings to analyse")
    if shape[1] == 0:
        raise DataError(f"{what}: no columns (shape {shape}): embeddings need at least one "
                        "dimension")
    bad = nonfinite_rows(arr)
    if bad:
        raise DataError(f"{what}: {bad} of {shape[0]} rows contain NaN or Inf (a diverged "
                        "model, or a broken export); remove or fix them")


def load_labels(path: str | Path) -> dict[str, np.ndarray]:
    """Integer label vectors ``{name: (N,)}``; a single-array file gives ``{"label": ...}``."""
    arrays = read_arrays(path, mmap=False)
    out = {}
    for k, v in arrays.items():
        if v.ndim == 1 and (np.issubdtype(v.dtype, np.integer) or np.issubdtype(v.dtype, np.bool_)):
            out[k or "label"] = v.astype(np.int64)
        elif v.ndim == 1 and np.issubdtype(v.dtype, np.floating) and np.all(v == np.round(v)):
            out[k or "label"] = v.astype(np.int64)
    if not out:
        raise DataError(f"{path}: no 1-D integer label arrays (keys found: "
                        f"{sorted(k for k in arrays if k) or ['<single array>']})")
    return out


def save_arrays(path: str | Path, arrays: Mapping[str, Any],
                texts: Mapping[str, str] | None = None) -> Path:
    """Write ``{key: array}`` atomically; format by suffix (.npz, .pt, .safetensors; .npy takes a
    single array). ``texts``: strings stored beside the arrays (read back by ``read_texts``):
    unicode arrays in .npz, strings in .pt, header metadata in .safetensors."""
    p = Path(path)
    data = {k: a for k, v in arrays.items() if (a := _to_numpy(v)) is not None}
    texts = dict(texts or {})
    suffix = p.suffix.lower()
    if texts and suffix == ".npy":
        raise DataError(f"{p}: .npy holds one array; use .npz to keep captions and metadata")

    def writer(tmp: Path) -> None:
        if suffix == ".npz":
            with open(tmp, "wb") as fh:
                np.savez(fh, **data, **{f"__text__{k}": np.array(v) for k, v in texts.items()})
        elif suffix == ".npy":
            if len(data) != 1:
                raise DataError(f"{p}: .npy holds one array, got {sorted(data)}")
            with open(tmp, "wb") as fh:
                np.save(fh, next(iter(data.values())))
        elif suffix in (".pt", ".pth"):
            obj: dict[str, Any] = {k: torch.from_numpy(np.ascontiguousarray(v))
                                   for k, v in data.items()}
            obj.update({f"__text__{k}": v for k, v in texts.items()})
            torch.save(obj, tmp)
        elif suffix == ".safetensors":
            save_file({k: np.ascontiguousarray(v) for k, v in data.items()}, str(tmp),
                      metadata=texts or None)
        else:
            raise DataError(f"{p}: unsupported output type {suffix!r} (use one of {SUFFIXES})")

    atomic_save(p, writer)
    return p
