import base64

from clipspace.report import write_report
from tests.helpers.runs import fake_run


def test_report_contains_every_figure_and_metric(tmp_path):
    a = fake_run(tmp_path, "clip", 0.5, 1e-3)
    b = fake_run(tmp_path, "meru", 0.25, 5e-4)
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


def test_single_run_shows_config(tmp_path):
    a = fake_run(tmp_path, "clip", 0.5, 1e-3)
    _, md = write_report([a], tmp_path / "r")
    assert "optim.steps" in md.read_text()
