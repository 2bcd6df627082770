"""One figure per quantity for all runs, on shared axes."""

from __future__ import annotations

import numpy as np

from clipspace.report import RunSummary
from clipspace.report import figures as F
from clipspace.report.views import view_2d
from tests.helpers.report import report_run


def _runs(tmp_path, names=("clip", "euclip", "meru")):
    return [RunSummary(report_run(tmp_path, n, r1=0.3 + 0.1 * i, seed=i))
            for i, n in enumerate(names)]


def test_root_distance_one_figure_rows_share_x_axis(tmp_path):
    runs = _runs(tmp_path)
    fig = F.root_distance_figure(runs)
    axes = fig.axes
    assert len(axes) == 3  # one row per run, in one figure
    for ax in axes[1:]:
        assert axes[0].get_shared_x_axes().joined(axes[0], ax)
        assert ax.get_xlim() == axes[0].get_xlim()
    lo = min(min(r.sample.root_dist_image.min(), r.sample.root_dist_text.min()) for r in runs)
    hi = max(max(r.sample.root_dist_image.max(), r.sample.root_dist_text.max()) for r in runs)
    for ax in axes:  # same bins everywhere, spanning all runs
        edges = sorted({round(p.get_x(), 9) for p in ax.patches})
        assert abs(edges[0] - lo) < 1e-6 and edges[-1] < hi
    assert len(F.png(fig)) > 1000


def test_curves_and_ablation_every_run_in_every_panel(tmp_path):
    runs = _runs(tmp_path)
    fig = F.curves_figure(runs)
    titles = [ax.get_title() for ax in fig.axes if ax.lines]
    assert titles == ["loss", "logit_scale"]
    for ax in fig.axes[:2]:
        assert [line.get_label() for line in ax.lines] == ["clip", "euclip", "meru"]
    fig = F.ablation_figure(runs)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.lines}
    assert sorted(panels) == ["i2t_r1", "l2i"]  # l2m is a scalar in analysis.json: no curve
    for run, line in zip(runs, panels["i2t_r1"].lines):
        np.testing.assert_allclose(line.get_ydata(), run.nested["ablation"]["i2t_r1"])
    fig = F.mean_difference_figure(runs)
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 3


def test_embedding_figure_plots_the_views(tmp_path):
    runs = _runs(tmp_path, ("clip", "meru"))
    fig = F.embedding_figure(runs)
    assert len(fig.axes) == 4
    meru = runs[1].sample
    img, txt, kind = view_2d(meru.image, meru.text, "lorentz", meru.curv)
    by_modality = fig.axes[2]
    assert "Poincare disk" in by_modality.get_title()
    offsets = [c.get_offsets() for c in by_modality.collections]
    np.testing.assert_allclose(offsets[0], img)
    np.testing.assert_allclose(offsets[1], txt)
    assert np.linalg.norm(np.concatenate(offsets[:2]), axis=1).max() < 1.0
    assert "PCA" in fig.axes[0].get_title()


def test_nothing_to_draw_gives_none(tmp_path):
    run = report_run(tmp_path, "clip")
    (run / "embeddings_sample.npz").unlink()
    (run / "metrics.jsonl").unlink()
    runs = [RunSummary(run)]
    assert F.root_distance_figure(runs) is None and F.embedding_figure(runs) is None
    assert F.curves_figure(runs) is None and F.mad_grid_figure([], []) is None
