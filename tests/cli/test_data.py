"""``clipspace data mad``: writes a MAD directory, refuses to overwrite, bad MNIST exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_cli_data_mad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from clipspace.cli import main

    out = tmp_path / "cli"
    assert main(["data", "mad", "--out", str(out), "--limit", "2", "--no-progress"]) == 0
    assert "48 images" in capsys.readouterr().out
    assert main(["data", "mad", "--out", str(out), "--limit", "2", "--no-progress"]) == 2
    assert main(["data", "mad", "--out", str(tmp_path / "x"), "--mnist", str(tmp_path / "no")]) == 2
