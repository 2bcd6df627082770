"""write_report: the reading order, one figure per quantity whatever the number of runs, the
headline and section tables, the verdict, the markdown twin, and bad input."""

from __future__ import annotations

import base64
import re

import pytest

from clipspace.errors import ClipspaceError
from clipspace.report import Section, Table, write_report
from tests.helpers.report import experiment_dir, report_run, tiny_png

ORDER = ["headline", "section-toy-experiment", "side-by-side", "fig-training-curves",
         "fig-root-distance", "fig-mean-difference", "fig-ablation", "mad-samples",
         "embeddings-2d", "fig-embeddings-2d", "config", "metrics"]


def _ids(page: str) -> list[str]:
    return re.findall(r'<(?:h2|figure) id="([^"]+)"', page)


def test_order_verdict_headline_and_tables(tmp_path):
    exp, sec = experiment_dir(tmp_path / "exp")
    runs = [exp / "runs" / "clip", exp / "runs" / "meru"]
    html_path, md_path = write_report(runs, tmp_path / "rep", title="T", sections=[sec])
    page = html_path.read_text()
    ids = _ids(page)
    assert [i for i in ids if i in ORDER] == ORDER
    assert '<span class="verdict verdict-partly">partly</span>' in page
    assert "Toy paper claims:</b> x grows with y" in page and "x grew from 1 to 2" in page
    # headline: one row per run with the papers' numbers, then the section's headline
    head = page[page.index('id="headline-runs"'):page.index('id="headline-sections"')]
    assert "<td>clip</td><td>0.1</td><td>0.2</td>" in head and "tau_d" in head
    assert "<td>Toy experiment</td><td>x at k=2</td><td>2</td><td>partly</td>" in page
    # the full metric table is the last table
    assert page.rindex("<table") == page.index('<table id="metric-table"')
    assert "<td>retrieval.i2t_r1</td><td>0.2</td><td>0.3</td>" in page
    md = md_path.read_text()
    assert md.index("## Headline") < md.index("## Toy experiment") < md.index("## All metrics")
    assert "**Verdict: partly**" in md and "| optim.lr |" not in md  # equal lr hidden
    assert (tmp_path / "rep" / "figures" / "root-distance.png").is_file()


def test_one_figure_per_quantity_not_per_run(tmp_path):
    def figures(names, out):
        runs = [report_run(tmp_path / out, n, seed=i) for i, n in enumerate(names)]
        page = write_report(runs, tmp_path / out / "rep")[0].read_text()
        return [i for i in _ids(page) if i.startswith("fig-")], page

    one, _ = figures(("clip",), "a")
    four, page = figures(("clip", "euclip", "meru", "atmg"), "b")
    assert one == four  # the same figures, each holding every run
    assert len(four) == len(set(four)) and page.count("data:image/png;base64,") == len(four)
    assert "fig-mad-samples" not in four  # no MAD directory in these configs: a note instead
    assert "No MAD samples to show" in page and "not trained on MAD" in page


def test_extra_and_section_figures_embedded(tmp_path):
    run = report_run(tmp_path, "clip")
    extra = tiny_png(run.parent / "extra.png")
    sec = Section("S", "P", "c", "f", "agrees", figures=[str(extra)])
    page = write_report([run], tmp_path / "r", sections=[sec], extra_figures=[extra])[0]
    text = page.read_text()
    assert text.count(base64.b64encode(extra.read_bytes()).decode()) == 2
    with pytest.raises(ClipspaceError, match="missing.png"):
        write_report([run], tmp_path / "r2", sections=[
            Section("S", "P", "c", "f", "agrees", figures=[str(tmp_path / "missing.png")])])


def test_sections_alone_give_headline_and_sections_only(tmp_path):
    _, sec = experiment_dir(tmp_path / "exp")
    html_path, md_path = write_report([], tmp_path / "rep", title="T", sections=[sec])
    ids = _ids(html_path.read_text())
    assert ids[:2] == ["headline", "section-toy-experiment"]
    assert not {"side-by-side", "config", "metrics"} & set(ids)
    assert "x grew from 1 to 2" in md_path.read_text()


def test_table_text_right_aligns_columns():
    assert Table(["a", "bb"], [["100", "1"]]).text() == "  a  bb\n100   1"


def test_bad_input(tmp_path):
    with pytest.raises(ClipspaceError, match="at least one run directory or section"):
        write_report([], tmp_path / "r")
    with pytest.raises(ClipspaceError, match="run directory not found"):
        write_report([tmp_path / "nope"], tmp_path / "r")
    with pytest.raises(ValueError, match="verdict"):
        Section("S", "P", "c", "f", "maybe")
