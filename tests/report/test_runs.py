"""What a report reads: run and experiment directories (collect), MAD images of a sample."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipspace.data.mad import MADDataset
from clipspace.errors import ClipspaceError
from clipspace.report import RunSummary, collect
from clipspace.report.runs import mad_images, unique_names
from tests.helpers.report import experiment_dir, report_run


def test_collect_runs_and_experiment_dirs(tmp_path):
    exp, sec = experiment_dir(tmp_path / "exp", ("clip", "meru", "atmg"))
    (exp / "runs" / "not-a-run").mkdir()
    single = report_run(tmp_path, "euclip")
    runs, sections = collect([exp, single, exp / "runs" / "clip"])
    assert [r.name for r in runs] == ["atmg", "clip", "meru", "euclip"]  # no duplicates
    assert [s.title for s in sections] == [sec.title] and sections[0].verdict == "partly"
    with pytest.raises(ClipspaceError, match="neither a run directory"):
        collect([exp / "runs" / "not-a-run"])
    with pytest.raises(ClipspaceError, match="not a directory"):
        collect([tmp_path / "missing"])
    (exp / "section.json").write_text(json.dumps({"title": "x"}))
    with pytest.raises(ClipspaceError, match="section.json: not a report section"):
        collect([exp])


def test_section_figures_relative_to_section_file(tmp_path):
    exp, sec = experiment_dir(tmp_path / "exp")
    sec.figures = ["fig.png"]
    sec.save(exp / "section.json")
    _, (loaded,) = collect([exp])
    assert loaded.figures == [str(exp / "fig.png")]


def test_mad_images_are_the_sample_indices(tmp_path, tiny_mad):
    run = RunSummary(report_run(tmp_path, "clip", mad=tiny_mad))
    rows = [3, 0, 7]
    images, why = mad_images(run, rows)
    assert why == "" and len(images) == 3
    data = MADDataset(tiny_mad, split="all")
    for r, im in zip(rows, images):
        g = int(run.sample.labels["index"][r])
        np.testing.assert_array_equal(im, data.image_array(int(np.flatnonzero(
            data.indices == g)[0])))
    other = RunSummary(report_run(tmp_path, "meru"))  # config names no MAD
    assert mad_images(other, rows) == ([], "meru: not trained on MAD (data.train is not mad:DIR)")
    moved = RunSummary(report_run(tmp_path, "atmg", mad=tmp_path / "gone"))
    images, why = mad_images(moved, rows)
    assert images == [] and "gone" in why


def test_runs_of_the_same_name_are_told_apart(tmp_path):
    a, _ = experiment_dir(tmp_path / "expA")
    b, _ = experiment_dir(tmp_path / "expB")
    runs = [RunSummary(d) for d in collect([a, b])[0]]
    unique_names(runs)
    assert [r.name for r in runs] == ["expA/runs/clip", "expA/runs/meru", "expB/runs/clip",
                                      "expB/runs/meru"]
