"""The report of real tiny runs (untrained clip and meru towers evaluated on the tiny MAD by
``evaluate_run``): the embedding sample and dynamics it saves, and the page checked in headless
Chromium (every image loads, nothing overflows sideways); skipped without chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from clipspace.analysis.entropy import dynamics_stats
from clipspace.experiments.common import evaluate_run
from clipspace.models import load_model_and_tokenizer
from clipspace.report import EmbeddingSample, Section, Table, write_report
from tests.helpers.runs import tiny_run

N = 100
CHECK = """<div id="browser-check"></div><script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  document.getElementById("browser-check").textContent = "RESULT" + JSON.stringify({
    images: imgs.length,
    loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth}) + "END";
});
</script></body>"""


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory, tiny_mad):
    root = tmp_path_factory.mktemp("tiny_report")
    runs = []
    for preset in ("clip", "meru"):
        run = tiny_run(root / preset, tiny_mad, preset, mad_captions=True)
        evaluate_run(run, f"mad:{tiny_mad}", suites=("zeroshot", "retrieval", "hierarchy"),
                     max_samples=N, progress=False)
        runs.append(run)
    wide = Table([f"column {i}" for i in range(40)], [[f"{i * 1.2345:.4f}" for i in range(40)]],
                 "a table wider than any window")
    sec = Section("Wide section", "Paper", "claim", "finding", "disagrees", tables=[wide],
                  headline={"a number": 1.5})
    html_path, _ = write_report(runs, root / "report", title="tiny", sections=[sec])
    return runs, html_path


def test_sample_and_dynamics_saved_by_evaluate_run(tiny_report):
    runs, _ = tiny_report
    for run, geometry in zip(runs, ("sphere", "lorentz")):
        sample = EmbeddingSample.load(run / "embeddings_sample.npz")
        assert sample.image.shape == sample.text.shape == (N, 32) and len(sample.captions) == N
        assert sample.geometry == geometry and len(sample.root_dist_image) == N
        assert {"digit", "index"} <= set(sample.labels)
        assert np.isfinite(sample.root_dist_text).all() and sample.mean_difference.shape == (32,)
        # every pair is in the sample here, so the saved dynamics can be recomputed from it
        model, _ = load_model_and_tokenizer(run)
        model.eval()
        img, txt = torch.from_numpy(sample.image), torch.from_numpy(sample.text)
        with torch.no_grad():
            want = dynamics_stats(img, txt, model.logits(img, txt))
        got = json.loads((run / "eval.json").read_text())["dynamics"]
        assert got["n"] == N
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_page_has_mad_grid_and_views(tiny_report):
    _, html_path = tiny_report
    page = html_path.read_text()
    for fig in ("fig-mad-samples", "fig-embeddings-2d", "fig-root-distance", "fig-ablation"):
        assert page.count(f'id="{fig}"') == 1, fig
    assert '<span class="verdict verdict-disagrees">disagrees</span>' in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
@pytest.mark.parametrize("width", [1280, 700])
def test_page_in_headless_chromium(tiny_report, tmp_path, width):
    _, html_path = tiny_report
    page = html_path.read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", CHECK, 1))
    out = subprocess.run(
        ["chromium", "--no-sandbox", "--headless=new", "--disable-gpu",
         f"--window-size={width},900", "--virtual-time-budget=10000", "--dump-dom",
         probe.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r"RESULT(.*?)END", out.stdout)
    assert found, out.stderr[-2000:]
    result = json.loads(found.group(1))
    assert result["images"] == page.count("<img ") >= 5
    assert result["loaded"] == result["images"]
    assert result["scrollWidth"] <= result["innerWidth"], result
