"""``clipspace report``: writes the report; a missing run or a corrupt metrics file exits 2."""

from clipspace.cli import main
from tests.helpers.runs import fake_run


def test_report_cli_and_errors(tmp_path, capsys):
    a = fake_run(tmp_path, "clip", 0.5, 1e-3)
    assert main(["report", str(a), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.html").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2
    (a / "metrics.jsonl").write_text('{"step": 1}\n{bad\n')
    assert main(["report", str(a), "--out", str(tmp_path / "r2")]) == 2
    assert "metrics.jsonl:2" in capsys.readouterr().err
