"""`clipspace demo --quick` end to end (the README's main job, shrunk to two of its presets: a
sphere and a hyperboloid; all four train in tests/experiments and tests/train); bad presets
exit 2."""

import json

from clipspace.cli import main


def test_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--presets", "clip,meru"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert sorted(results) == ["clip", "meru"]
    for preset, res in results.items():
        assert 0.0 <= res["zeroshot"]["digit"]["top1"] <= 1.0
        assert res["zeroshot"]["colour"]["top1"] > 0.5, preset  # colour is learnt in seconds
        assert 0.0 <= res["zeroshot_score_ensemble"]["digit"]["top1"] <= 1.0
        assert 0.0 <= res["retrieval"]["i2t_r1"] <= 1.0
        assert {"precision", "recall", "tau_d"} <= set(res["hierarchy"])
        assert 0.0 < res["gap"]["rmg"] < 1.0
        run = out / "runs" / preset
        assert (run / "eval.json").exists() and (run / "analysis.json").exists()
        assert (run / "figures" / "root_distance.png").exists()
    page = (out / "report" / "report.html").read_text()
    # every run's figures are embedded, plus the training curves
    # one figure per quantity (curves, root distance, mean difference, ablation, MAD grid, 2-D
    # views), not one per run; headline first, then the demo's section, then the runs
    assert page.count("data:image/png;base64,") == 6
    assert page.index('id="headline"') < page.index('id="section-') < page.index(
        'id="side-by-side"')
    table = (out / "summary.txt").read_text()
    assert all(p in table for p in results) and table.strip() in printed
    # reusing the generated MAD: tests/experiments/test_common.py (ensure_mad)


def test_demo_rejects_unknown_preset(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--presets", "clip,hyper"]) == 2
    assert "hyper" in capsys.readouterr().err
