"""``write_report``: the page in the order a reader wants it.

1. headline: the numbers the papers argue about, per run (``tables.HEADLINE_KEYS``), and each
   section's ``headline`` numbers with its verdict;
2. each experiment's section (claim, this run's finding, verdict, tables, figures);
3. the runs side by side on shared axes, one figure per quantity: the experiments' extra
   figures, training curves, distance to [ROOT], per-dimension mean difference, ablation;
4. a grid of MAD samples with their captions;
5. 2-D views of the embeddings (Poincare disk for Lorentz, PCA otherwise) by modality and digit;
6. the config differences;
7. the full metric table.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from clipspace.errors import ClipspaceError
from clipspace.io import atomic_write_text
from clipspace.report import figures as F
from clipspace.report.page import Page
from clipspace.report.runs import RunSummary, mad_images, unique_names
from clipspace.report.sample import sample_rows
from clipspace.report.section import Section
from clipspace.report.tables import (
    config_table,
    headline_table,
    metric_table,
    section_headline_table,
)

#: (figure id, caption, function of the runs) of part 3, in page order
SHARED_FIGURES = (
    ("training-curves", "Training curves of every run (loss terms and learnt scalars)",
     F.curves_figure),
    ("root-distance", "Distance to [ROOT] of test images and texts, every run on one shared "
     "x-axis (each in its geometry's metric)", F.root_distance_figure),
    ("mean-difference", "Per-dimension |mean(image) - mean(text)|, sorted, every run",
     F.mean_difference_figure),
    ("ablation", "Dropping the k dimensions of largest mean difference: every run together",
     F.ablation_figure),
)
MAD_GRID = 18


def _say(progress: bool, what: str) -> None:
    if progress:
        print(f"[report] {what}", file=sys.stderr, flush=True)


def _headline(page: Page, runs: Sequence[RunSummary], sections: Sequence[Section]) -> None:
    page.heading("Headline", "headline")
    if runs:
        page.table(headline_table(runs), "headline-runs")
    if any(s.headline for s in sections):
        page.table(section_headline_table(sections), "headline-sections")


def _side_by_side(page: Page, runs: Sequence[RunSummary], extra: Sequence[Path],
                  progress: bool) -> None:
    page.heading("Runs side by side", "side-by-side")
    for fig in extra:
        if not Path(fig).is_file():
            raise ClipspaceError(f"report: figure not found: {fig}")
        page.figure(f"extra-{Path(fig).stem}", Path(fig).stem, Path(fig).read_bytes())
    for fig_id, caption, make in SHARED_FIGURES:
        _say(progress, f"figure {fig_id}")
        fig = make(runs)
        if fig is not None:
            page.figure(fig_id, caption, F.png(fig))


def _mad_grid(page: Page, runs: Sequence[RunSummary]) -> None:
    page.heading("MAD samples", "mad-samples")
    notes = []
    for run in runs:
        if run.sample is None:
            continue
        rows = sample_rows(len(run.sample.captions), MAD_GRID, seed=1)
        images, why = mad_images(run, rows)
        if images:
            fig = F.mad_grid_figure(images, [run.sample.captions[r] for r in rows])
            page.figure("mad-samples", f"Test images of {run.name}'s MAD with the captions "
                        "it was evaluated on", F.png(fig))
            return
        notes.append(why)
    page.text("No MAD samples to show: " + ("; ".join(notes) or "no run has an embedding "
              "sample (embeddings_sample.npz, written by evaluate_run)"), "note")


def _views(page: Page, runs: Sequence[RunSummary]) -> None:
    page.heading("Embeddings in 2-D", "embeddings-2d")
    fig = F.embedding_figure(runs)
    if fig is None:
        page.text("No run has an embedding sample (embeddings_sample.npz).", "note")
        return
    page.figure("embeddings-2d", "Test pairs of every run: Poincare disk for Lorentz runs, PCA "
                "for sphere and Euclidean runs; by modality (left) and digit (right)",
                F.png(fig))


def write_report(
    run_dirs: Sequence[str | Path], out_dir: str | Path, title: str = "clipspace report",
    extra_figures: Sequence[Path] = (),
    sections: Sequence[Section] = (),
    progress: bool = False,
) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` (+ ``figures/``) into
    ``out_dir`` in the order of the module docstring; returns their paths. Without runs (an
    experiment that trains nothing) the page holds the headline and the sections alone.
    ``progress``: name each step on stderr as it starts."""
    if not run_dirs and not sections:
        raise ClipspaceError("report needs at least one run directory or section")
    _say(progress, f"reading {len(run_dirs)} run(s)")
    runs = [RunSummary(d) for d in run_dirs]
    unique_names(runs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    page = Page(title, out)
    _headline(page, runs, sections)
    for sec in sections:
        page.section(sec)
    if runs:
        _run_parts(page, runs, extra_figures, progress)
    html_path, md_path = out / "report.html", out / "report.md"
    atomic_write_text(html_path, page.html())
    atomic_write_text(md_path, page.markdown())
    return html_path, md_path


def _run_parts(page: Page, runs: Sequence[RunSummary], extra: Sequence[Path],
               progress: bool) -> None:
    """Parts 3-7 of the page: everything that is read from the runs."""
    _side_by_side(page, runs, extra, progress)
    _say(progress, "MAD samples")
    _mad_grid(page, runs)
    _say(progress, "2-D views of the embeddings")
    _views(page, runs)
    page.heading("Config", "config")
    page.table(config_table(runs), "config-table")
    page.heading("All metrics", "metrics")
    page.table(metric_table(runs), "metric-table")


__all__ = ["SHARED_FIGURES", "write_report"]
