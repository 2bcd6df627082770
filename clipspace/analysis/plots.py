"""Analysis figures (matplotlib, Agg backend). Each function writes one PNG atomically and returns
its path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipspace.io import atomic_save


def _figure(figsize: tuple[float, float] = (5.0, 3.5)) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def _save(fig: Any, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    p = Path(path)
    fig.tight_layout()
    atomic_save(p, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return p


def plot_root_distance(dists: Mapping[str, Any], path: str | Path, bins: int = 50) -> Path:
    """Histogram of distance to [ROOT] per modality, e.g. ``{"image": d_img, "text": d_txt}``."""
    fig, ax = _figure()
    for name, d in dists.items():
        ax.hist(np.asarray(d, dtype=np.float64), bins=bins, alpha=0.6, label=name, density=True)
    ax.set_xlabel("distance to [ROOT]")
    ax.set_ylabel("density")
    ax.legend()
    return _save(fig, path)


def plot_mean_difference(diff: Any, path: str | Path, top: int = 20) -> Path:
    """Per-dimension mean(img) - mean(txt), sorted by magnitude; the ``top`` largest highlighted."""
    d = np.asarray(diff, dtype=np.float64)
    order = np.argsort(-np.abs(d))
    fig, ax = _figure((6.0, 3.5))
    colours = ["tab:red" if i < top else "tab:blue" for i in range(len(d))]
    ax.bar(np.arange(len(d)), d[order], color=colours, width=1.0)
    ax.set_xlabel("dimension (sorted by |difference|)")
    ax.set_ylabel("mean(image) - mean(text)")
    return _save(fig, path)


def plot_ablation(curve: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """Ablation curve: gap (rmg, l2m) and every other metric against the number of dropped dims."""
    fig, ax = _figure()
    k = list(curve["k"])
    for name, v in curve.items():
        if name in ("k", "dims"):
            continue
        ax.plot(k, list(v), marker="o", ms=3, label=name)
    ax.set_xlabel("dimensions removed (k)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_by_caption_length(
    lengths: Sequence[int], values: Mapping[str, Sequence[float]], path: str | Path
) -> Path:
    """Gap and bias (e.g. ``{"rmg": [...], "moad": [...]}``) against caption length."""
    fig, ax = _figure()
    for name, v in values.items():
        ax.plot(list(lengths), list(v), marker="o", label=name)
    ax.set_xlabel("caption length (attributes)")
    ax.legend()
    return _save(fig, path)
