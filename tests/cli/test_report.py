"""``clipspace report``: run directories and experiment output directories (section.json +
runs/*) in one report; bad directories, sections and metrics files exit 2 naming the file."""

from __future__ import annotations

import re

from clipspace.cli import main
from tests.helpers.report import experiment_dir, report_run


def test_report_of_experiment_and_run_dirs(tmp_path, capsys):
    exp, sec = experiment_dir(tmp_path / "exp")
    extra = report_run(tmp_path, "euclip")
    out = tmp_path / "r"
    assert main(["report", str(exp), str(extra), "--out", str(out), "--title", "All"]) == 0
    printed = capsys.readouterr()
    assert "report of 3 run(s) and 1 section(s)" in printed.out
    assert "[report] figure root-distance" in printed.err  # progress on stderr
    page = (out / "report.html").read_text()
    assert "<title>All</title>" in page and f"<h2 id=\"section-toy-experiment\">{sec.title}" in page
    head = page[page.index('id="headline-runs"'):page.index("</table>",
                                                           page.index('id="headline-runs"'))]
    assert re.findall(r"<tr><td>([a-z]+)</td>", head) == ["clip", "meru", "euclip"]
    assert (out / "report.md").read_text().startswith("# All")


def test_report_cli_errors(tmp_path, capsys):
    a = report_run(tmp_path, "clip")
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty), "--out", str(tmp_path / "r0")]) == 2
    assert "neither a run directory" in capsys.readouterr().err
    (a / "metrics.jsonl").write_text('{"step": 1}\n{bad\n')
    assert main(["report", str(a), "--out", str(tmp_path / "r2")]) == 2
    assert "metrics.jsonl:2" in capsys.readouterr().err
    exp, _ = experiment_dir(tmp_path / "exp")
    (exp / "section.json").write_text("{not json")
    assert main(["report", str(exp), "--out", str(tmp_path / "r3")]) == 2
    assert "section.json: invalid JSON at line 1" in capsys.readouterr().err
