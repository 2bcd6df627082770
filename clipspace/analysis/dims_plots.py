"""Figures of the per-dimension view and of post-hoc gap closing (Two Effects, One Trigger,
Fig. 4a/b/c): per-dimension means of both modalities, the image/text scatter on two
dimensions, and gap/performance before and after each gap-closing method. Each function writes
one PNG atomically (``plots._save``) and returns its path; the sorted mean-difference plot is
``plots.plot_mean_difference``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipspace.analysis.plots import _figure, _save

MAX_SCATTER = 2000  # points per modality in the scatter (a seeded subset beyond that)


def plot_dim_means(mean_img: Sequence[float], mean_txt: Sequence[float], path: str | Path,
                   mark: Sequence[int] = ()) -> Path:
    """Fig. 4a: mean of every dimension for images and texts (bars), ``mark`` highlighted."""
    mi, mt = np.asarray(mean_img, np.float64), np.asarray(mean_txt, np.float64)
    x = np.arange(len(mi))
    fig, ax = _figure((7.0, 3.5))
    ax.bar(x, mi, width=1.0, alpha=0.6, label="image", color="tab:blue")
    ax.bar(x, mt, width=1.0, alpha=0.6, label="text", color="tab:orange")
    for d in mark:
        ax.axvline(int(d), color="tab:red", lw=0.8, ls="--")
    ax.set_xlabel("embedding dimension")
    ax.set_ylabel("mean (unit-norm embeddings)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_dim_scatter(img: Any, txt: Any, dims: Sequence[int], path: str | Path,
                     seed: int = 0) -> Path:
    """Fig. 4b: image and text points on dimensions ``dims[0]`` (x) and ``dims[1]`` (y) of
    the unit-norm rows (a seeded subset of ``MAX_SCATTER`` per modality)."""
    rng = np.random.default_rng(seed)
    fig, ax = _figure((4.5, 4.0))
    for name, x, colour in (("image", img, "tab:blue"), ("text", txt, "tab:orange")):
        a = np.asarray(x, np.float64)
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        if len(a) > MAX_SCATTER:
            a = a[rng.choice(len(a), MAX_SCATTER, replace=False)]
        ax.scatter(a[:, dims[0]], a[:, dims[1]], s=4, alpha=0.6, label=name, color=colour)
    ax.set_xlabel(f"dim {dims[0]}")
    ax.set_ylabel(f"dim {dims[1]}")
    ax.legend(fontsize=8, markerscale=3)
    return _save(fig, path)


def plot_close_gap(result: Mapping[str, Any], path: str | Path,
                   keys: Sequence[str] = ("rmg", "l2m")) -> Path:
    """Grouped bars: ``keys`` (gap) and every performance number of ``close_gap``'s result,
    before and after each method."""
    before = result["before"]
    names = list(keys) + [k for k in before if k not in keys and k != "l2i"]
    rows = {"before": [before[n] for n in names]}
    for method, res in result["methods"].items():
        rows[method] = [res["after"].get(n, np.nan) for n in names]
    x = np.arange(len(names))
    width = 0.8 / len(rows)
    fig, ax = _figure((7.0, 3.5))
    for j, (label, vals) in enumerate(rows.items()):
        ax.bar(x + (j - (len(rows) - 1) / 2) * width, vals, width=width, label=label)
    ax.set_xticks(x, names, fontsize=8)
    ax.legend(fontsize=7)
    return _save(fig, path)


__all__ = ["plot_close_gap", "plot_dim_means", "plot_dim_scatter"]
