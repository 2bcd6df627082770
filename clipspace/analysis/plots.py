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


def plot_root_distance_panels(panels: Mapping[str, Mapping[str, Any]], path: str | Path,
                              title: str = "", bins: int = 40) -> Path:
    """One histogram panel per run (``{label: {"image": d, "text": d}}``), stacked on one shared
    x axis and the same bins, so the runs of one geometry compare at a glance (EuCLIP Fig. 2/4)."""
    values = [np.asarray(d, np.float64) for p in panels.values() for d in p.values()]
    lo, hi = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    fig, _ = _figure((5.0, 1.2 + 1.8 * len(panels)))
    fig.clf()
    axes = np.atleast_1d(fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0])
    for ax, (label, dists) in zip(axes, panels.items(), strict=True):
        for name, d in dists.items():
            ax.hist(np.asarray(d, np.float64), bins=edges, alpha=0.6, label=name, density=True)
            ax.axvline(float(np.median(d)), ls="--", lw=1, color=ax.patches[-1].get_facecolor())
        ax.set_title(label, fontsize=9)
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
    axes[-1].set_xlabel("distance to [ROOT] (dashed: medians)")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_heatmaps(panels: Mapping[str, Any], rows: Sequence[str], cols: Sequence[str],
                  path: str | Path) -> Path:
    """One annotated heat map per metric (``{metric: (len(rows), len(cols)) array}``); NaN cells
    (combinations that do not exist) are grey and marked "n/a"."""
    fig, _ = _figure((3.2 + 2.6 * len(panels), 1.0 + 0.55 * len(rows)))
    fig.clf()
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, grid) in zip(axes, panels.items(), strict=True):
        a = np.asarray(grid, np.float64)
        shown = np.ma.masked_invalid(a)
        ax.set_facecolor("0.85")
        ax.imshow(shown, cmap="viridis", aspect="auto",
                  vmin=np.nanmin(a) if np.isfinite(a).any() else 0.0,
                  vmax=np.nanmax(a) if np.isfinite(a).any() else 1.0)
        for (i, j), v in np.ndenumerate(a):
            ax.text(j, i, "n/a" if not np.isfinite(v) else f"{v:.3f}", ha="center",
                    va="center", fontsize=8, color="k" if not np.isfinite(v) else "w")
        ax.set_xticks(range(len(cols)), list(cols))
        ax.set_yticks(range(len(rows)), list(rows))
        ax.set_title(name, fontsize=9)
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


def plot_curves_by_step(
    panels: Mapping[str, Mapping[str, tuple[Sequence[int], Sequence[float]]]],
    path: str | Path, cols: int = 3,
) -> Path:
    """One panel per quantity (``{quantity: {run: (steps, values)}}``), every run on the same
    axes with the same colour in every panel: training dynamics against step."""
    rows = -(-len(panels) // cols)
    fig, _ = _figure((4.0 * cols, 3.0 * rows))
    fig.clear()
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, (quantity, runs) in zip(axes, panels.items(), strict=False):
        for k, (run, (steps, values)) in enumerate(runs.items()):
            ax.plot(list(steps), list(values), marker=".", color=f"C{k}", label=run)
        ax.set_title(quantity)
        ax.set_xlabel("step")
        ax.legend(fontsize="small")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return _save(fig, path)


def plot_grouped_bars(
    panels: Mapping[str, Mapping[str, Mapping[str, float]]], path: str | Path,
    ylabel: str = "",
) -> Path:
    """One panel per entry (``{panel: {series: {category: value}}}``): the series' bars side by
    side per category, one colour per series in every panel, and a line at zero."""
    fig, _ = _figure((4.5 * len(panels), 3.5))
    fig.clear()
    axes = np.atleast_1d(fig.subplots(1, len(panels))).ravel()
    for ax, (title, series) in zip(axes, panels.items(), strict=True):
        cats = list(dict.fromkeys(c for values in series.values() for c in values))
        width = 0.8 / max(len(series), 1)
        for k, (name, values) in enumerate(series.items()):
            xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(cats))]
            ax.bar(xs, [values.get(c, np.nan) for c in cats], width, color=f"C{k}", label=name)
        ax.axhline(0.0, color="k", lw=0.6)
        ax.set_xticks(range(len(cats)), cats)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize="small")
    return _save(fig, path)
