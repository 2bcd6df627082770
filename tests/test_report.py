import base64
import json

import numpy as np
from PIL import Image

from clipspace.cli import main
from clipspace.report import write_report


def _fake_run(root, name, r1, lr):
    run = root / name
    (run / "figures").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"preset": name, "optim": {"lr": lr, "steps": 5}}))
    rows = [{"step": s, "loss": 3.0 - 0.1 * s, "logit_scale": 14.0 + s} for s in range(5)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (run / "eval.json").write_text(json.dumps({"retrieval": {"image_to_text": {"R@1": r1}}}))
    (run / "analysis.json").write_text(json.dumps({"gap": {"rmg": 0.4}}))
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :, 0] = 200 if name == "clip" else 50
    Image.fromarray(img).save(run / "figures" / "hist.png")
    return run


def test_report_contains_every_figure_and_metric(tmp_path):
    a = _fake_run(tmp_path, "clip", 0.5, 1e-3)
    b = _fake_run(tmp_path, "meru", 0.25, 5e-4)
    html_path, md_path = write_report([a, b], tmp_path / "rep")
    page = html_path.read_text()
    # two run figures + the training curves, all embedded
    embedded = page.count("data:image/png;base64,")
    assert embedded == 3
    for fig in (a / "figures" / "hist.png", b / "figures" / "hist.png"):
        assert base64.b64encode(fig.read_bytes()).decode() in page
    assert "retrieval.image_to_text.R@1" in page and "0.25" in page and "0.5" in page
    md = md_path.read_text()
    assert "| retrieval.image_to_text.R@1 | 0.5 | 0.25 |" in md
    assert "| optim.lr | 0.001 | 0.0005 |" in md  # differing config shown
    assert "optim.steps" not in md  # equal config hidden


def test_report_cli_and_errors(tmp_path, capsys):
    a = _fake_run(tmp_path, "clip", 0.5, 1e-3)
    assert main(["report", str(a), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.html").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2
    (a / "metrics.jsonl").write_text('{"step": 1}\n{bad\n')
    assert main(["report", str(a), "--out", str(tmp_path / "r2")]) == 2
    assert "metrics.jsonl:2" in capsys.readouterr().err


def test_single_run_shows_config(tmp_path):
    a = _fake_run(tmp_path, "clip", 0.5, 1e-3)
    _, md = write_report([a], tmp_path / "r")
    assert "optim.steps" in md.read_text()
