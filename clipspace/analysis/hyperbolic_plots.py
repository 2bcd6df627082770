"""Figures of the MERU / ATMG experiments: the traversal histogram (EuCLIP Fig. 5), metrics
against curvature, and the two ATMG propositions in H^2 (Poincare disk, cone area). Each
function writes one PNG atomically (``plots._save``) and returns its path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipspace.analysis.plots import _figure, _save


def plot_kept_histogram(counts: Mapping[str, Sequence[int]], path: str | Path) -> Path:
    """Histogram of the number of captions kept by the traversal to [ROOT] per image, one
    step series per model (EuCLIP Fig. 5), on shared integer bins."""
    top = max([1, *(int(max(c)) for c in counts.values() if len(c))])
    bins = np.arange(-0.5, top + 1.5)
    fig, ax = _figure((6.0, 3.5))
    for name, c in counts.items():
        ax.hist(np.asarray(c), bins=bins, histtype="step", lw=1.6, label=name)
    ax.set_xlabel("captions kept on the way to [ROOT]")
    ax.set_ylabel("images")
    ax.legend()
    return _save(fig, path)


def plot_curvature(
    curvs: Sequence[float], series: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path,
) -> Path:
    """One panel per metric (``series[metric][label]`` = values at ``curvs``), log-c axis."""
    metrics = list(series)
    fig, axes = _figure((4.2 * len(metrics), 3.4))
    fig.clear()
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), k + 1)
        for label, values in series[metric].items():
            ax.plot(curvs, values, marker="o", lw=1.2, label=label)
        ax.set_xscale("log")
        ax.set_xlabel("curvature c (initial value when learnt)")
        ax.set_title(metric, fontsize=10)
        if k == 0:
            ax.legend(fontsize=7)
    return _save(fig, path)


def plot_spread(disk: Mapping[str, Any], path: str | Path) -> Path:
    """Proposition 1 in the unit Poincare disk: O, the text point x, the two boundary geodesics
    of its cone, the circle of points at equal distance, the clumped start and the optimum.
    ``disk``: (N, 2) arrays under "x", "cone_left", "cone_right", "circle", "start", "optimum"."""
    fig, ax = _figure((4.6, 4.6))
    t = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(t), np.sin(t), color="0.6", lw=0.8)
    ax.plot(*np.asarray(disk["circle"]).T, color="0.4", lw=0.8, ls=":", label="d(x, y) = delta")
    for side in ("cone_left", "cone_right"):
        ax.plot(*np.asarray(disk[side]).T, color="tab:green", lw=1.2)
    ax.scatter(*np.asarray(disk["start"]).T, s=18, color="tab:blue", label="start (in cone)")
    ax.scatter(*np.asarray(disk["optimum"]).T, s=22, color="tab:red", marker="x",
               label="max sum of distances")
    ax.scatter([0], [0], s=20, color="k")
    ax.scatter(*np.asarray(disk["x"]).T, s=40, color="tab:green", marker="*", label="x (text)")
    ax.set_aspect("equal")
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.legend(fontsize=7, loc="lower left")
    return _save(fig, path)


def plot_cone_area(
    deltas: Sequence[float], closed: Mapping[str, Sequence[float]],
    mc: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | Path,
) -> Path:
    """Proposition 2: area inside the cone within distance delta of x (log scale) against
    sqrt(c) delta; closed form as lines, Monte-Carlo estimates +- 2 standard errors as dots."""
    fig, ax = _figure((5.5, 3.8))
    d = np.asarray(deltas, dtype=np.float64)
    for label, v in closed.items():
        line = ax.plot(d, v, lw=1.2, label=f"{label} closed form")[0]
        if label in mc:
            est, se = (np.asarray(a, dtype=np.float64) for a in mc[label])
            ax.errorbar(d, est, yerr=2 * se, fmt="o", ms=3, color=line.get_color(),
                        label=f"{label} Monte Carlo")
    ax.set_yscale("log")
    ax.set_xlabel("sqrt(c) * largest distance delta")
    ax.set_ylabel("c * area of cone within delta")
    ax.legend(fontsize=7)
    return _save(fig, path)


__all__ = ["plot_cone_area", "plot_curvature", "plot_kept_histogram", "plot_spread"]
