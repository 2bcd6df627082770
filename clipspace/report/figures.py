"""The report's figures, each ONE figure for all runs on shared axes (matplotlib's object API,
no pyplot state): training curves, distance to [ROOT], dimension ablation, per-dimension mean
difference, 2-D embedding views, and the grid of MAD samples. Each returns a matplotlib
``Figure`` (``png`` renders it), or None when no run has the data."""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from clipspace.report.runs import RunSummary
from clipspace.report.views import view_2d

CURVE_SCALARS = ("logit_scale", "curv", "lr", "alpha_img", "alpha_txt")
MODALITY_COLOURS = {"image": "tab:blue", "text": "tab:orange"}


def png(fig: Figure, dpi: int = 90) -> bytes:
    """The figure as PNG bytes (tight layout)."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _colour(i: int) -> str:
    return f"C{i % 10}"


def _grid(n: int, cols: int, w: float, h: float, **kw) -> tuple[Figure, list]:
    """A figure of ``n`` panels in rows of ``cols`` (unused panels hidden)."""
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(w * cols, h * rows))
    axes = list(fig.subplots(rows, cols, squeeze=False, **kw).flat)
    for ax in axes[n:]:
        ax.axis("off")
    return fig, axes[:n]


def _line_panels(panels: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]],
                 names: Sequence[str], xlabel: str, marker: str | None = None) -> Figure:
    """One panel per quantity (``panels``: key -> run name -> (x, y)), one line per run, a run's
    colour fixed by its place in ``names``."""
    fig, axes = _grid(len(panels), 3, 4.0, 2.8, sharex=True)
    for ax, (key, lines) in zip(axes, panels.items()):
        for i, name in enumerate(names):
            if name in lines:
                ax.plot(*lines[name], label=name, lw=1.2, color=_colour(i), marker=marker, ms=2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    return fig


def curves_figure(runs: Sequence[RunSummary]) -> Figure | None:
    """Every logged loss term and scalar against step: one panel per key, one line per run."""
    keys: list[str] = []
    for run in runs:
        for row in run.metrics:
            keys += [k for k, v in row.items() if k not in keys and isinstance(v, (int, float))
                     and (k.startswith("loss") or k in CURVE_SCALARS)]
    if not keys:
        return None
    panels = {key: {run.name: tuple(zip(*pts)) for run in runs if (pts := [
        (r["step"], r[key]) for r in run.metrics if key in r and "step" in r])} for key in keys}
    return _line_panels(panels, [r.name for r in runs], "step")


def root_distance_figure(runs: Sequence[RunSummary]) -> Figure | None:
    """Histograms of the distance to [ROOT] (image and text), one row per run, one shared
    x-axis and shared bins (each run in its own geometry's metric)."""
    have = [r for r in runs if r.sample is not None]
    if not have:
        return None
    dists = [np.concatenate([r.sample.root_dist_image, r.sample.root_dist_text]) for r in have]
    lo, hi = min(float(d.min()) for d in dists), max(float(d.max()) for d in dists)
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 41)
    fig, axes = _grid(len(have), 1, 7.0, 1.7, sharex=True)
    for ax, run in zip(axes, have):
        for name, d in (("image", run.sample.root_dist_image), ("text", run.sample.root_dist_text)):
            ax.hist(d, bins=bins, alpha=0.6, density=True, label=name,
                    color=MODALITY_COLOURS[name])
        ax.set_ylabel(f"{run.name}\n({run.sample.geometry})", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    axes[-1].set_xlabel("distance to [ROOT] (shared axis)")
    return fig


def _ablation_curves(run: RunSummary) -> dict[str, list[float]]:
    abl = run.nested.get("ablation", {})
    ks = abl.get("k") if isinstance(abl, dict) else None
    if not isinstance(ks, list) or not ks:
        return {}
    return {k: v for k, v in abl.items() if k not in ("k", "dims") and isinstance(v, list)
            and len(v) == len(ks)}


def ablation_figure(runs: Sequence[RunSummary]) -> Figure | None:
    """The dimension-ablation curves (metric against the k top mean-difference dimensions
    dropped): one panel per metric, one line per run."""
    curves = {r.name: _ablation_curves(r) for r in runs}
    keys: list[str] = []
    for c in curves.values():
        keys += [k for k in c if k not in keys]
    if not keys:
        return None
    panels = {key: {r.name: (r.nested["ablation"]["k"], curves[r.name][key]) for r in runs
                    if key in curves[r.name]} for key in keys}
    return _line_panels(panels, [r.name for r in runs], "dimensions dropped (k)", marker="o")


def mean_difference_figure(runs: Sequence[RunSummary]) -> Figure | None:
    """|mean(image) - mean(text)| per dimension, sorted, all runs on one axis."""
    have = [(i, r) for i, r in enumerate(runs) if r.sample is not None]
    if not have:
        return None
    fig = Figure(figsize=(7.0, 3.0))
    ax = fig.subplots()
    for i, run in have:
        ax.plot(np.sort(np.abs(run.sample.mean_difference))[::-1], label=run.name,
                color=_colour(i))
    ax.set_xlabel("dimension (sorted by |difference|)")
    ax.set_ylabel("|mean(image) - mean(text)|")
    ax.legend(fontsize=7)
    return fig


def _scatter(ax, pts: np.ndarray, colours, label: str | None = None, marker: str = "o") -> None:
    ax.scatter(pts[:, 0], pts[:, 1], c=colours, s=7, marker=marker, lw=0, alpha=0.8, label=label)


def embedding_figure(runs: Sequence[RunSummary]) -> Figure | None:
    """2-D views of each run's sample (``views.view_2d``: Poincare disk for Lorentz, PCA
    otherwise): one row per run, coloured by modality (left) and by digit (right; images o,
    texts x)."""
    have = [r for r in runs if r.sample is not None]
    if not have:
        return None
    fig = Figure(figsize=(8.0, 3.6 * len(have)))
    axes = fig.subplots(len(have), 2, squeeze=False)
    for (left, right), run in zip(axes, have):
        s = run.sample
        img, txt, kind = view_2d(s.image, s.text, s.geometry, s.curv)
        _scatter(left, img, MODALITY_COLOURS["image"], "image")
        _scatter(left, txt, MODALITY_COLOURS["text"], "text")
        left.legend(fontsize=7, markerscale=2)
        key = "digit" if "digit" in s.labels else next(iter(s.labels), None)
        lab = s.labels[key] % 10 if key else np.zeros(len(img), int)
        cmap = [f"C{int(d)}" for d in lab]
        _scatter(right, img, cmap, marker="o")
        _scatter(right, txt, cmap, marker="x")
        for d in np.unique(lab):
            right.scatter([], [], c=f"C{int(d)}", s=10, label=str(int(d)))
        right.legend(fontsize=6, ncol=2, title=key, title_fontsize=7)
        for ax, what in ((left, "modality"), (right, key or "label")):
            ax.set_title(f"{run.name} ({s.geometry}, {kind}) by {what}", fontsize=9)
            ax.tick_params(labelsize=7)
            if kind == "Poincare disk":  # the whole unit disk, whatever the data span
                ax.add_patch(_circle())
                ax.set_xlim(-1.05, 1.05)
                ax.set_ylim(-1.05, 1.05)
                ax.set_aspect("equal", adjustable="box")
            else:
                ax.set_aspect("equal", adjustable="datalim")
    return fig


def _circle() -> Circle:
    return Circle((0, 0), 1.0, fill=False, color="0.5", lw=0.8)


def mad_grid_figure(images: Sequence[np.ndarray], captions: Sequence[str], cols: int = 6
                    ) -> Figure | None:
    """MAD samples with their captions (wrapped under each image)."""
    if not images:
        return None
    fig, axes = _grid(len(images), cols, 1.9, 2.3)
    for ax, im, cap in zip(axes, images, captions):
        ax.imshow(im, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("\n".join(textwrap.wrap(cap, 24)), fontsize=7)
    return fig


__all__ = ["ablation_figure", "curves_figure", "embedding_figure", "mad_grid_figure",
           "mean_difference_figure", "png", "root_distance_figure"]
