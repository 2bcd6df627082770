"""`clipspace analyze` on files the test writes (JSON equals the library functions) and on a
run's embeddings of the tiny MAD."""

import json

import numpy as np
import pytest
import torch

from clipspace.analysis.gap import gap_stats
from clipspace.analysis.moad import moad
from clipspace.analysis.neighbourhood import neighbourhood_test
from clipspace.cli import main
from tests.helpers.mad import TINY_MAD_TEST_IMAGES
from tests.helpers.runs import tiny_run


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    n, d = 60, 8
    digit = rng.integers(0, 4, n)
    colour = rng.integers(0, 3, n)
    img = (rng.normal(size=(n, d)) + 2 * np.eye(d)[digit] + 1.0).astype(np.float32)
    txt = (img + rng.normal(size=(n, d)) - 1.0).astype(np.float32)
    np.save(tmp_path / "img.npy", img)
    torch.save(torch.from_numpy(txt), tmp_path / "txt.pt")
    np.savez(tmp_path / "labels.npz", digit=digit, colour=colour,
             caption_words=rng.integers(1, 4, n))
    return tmp_path, img, txt, digit, colour


def _run(capsys, argv):
    code = main(argv)
    out = capsys.readouterr().out
    return code, (json.loads(out) if code == 0 else None)


def test_analyze_gap_and_plots(files, capsys) -> None:
    d, img, txt, *_ = files
    code, res = _run(capsys, ["analyze", "gap", "--image-emb", str(d / "img.npy"), "--text-emb",
                              str(d / "txt.pt"), "--labels", str(d / "labels.npz"),
                              "--plot", str(d / "fig"), "--out", str(d / "gap.json")])
    assert code == 0
    want = gap_stats(img, txt)
    for k in ("l2m", "l2i", "rmg"):
        assert res[k] == pytest.approx(want[k])
    assert json.loads((d / "gap.json").read_text())["rmg"] == pytest.approx(want["rmg"])
    assert len(res["figures"]) == 3 and all((d / "fig").glob("*.png"))


def test_analyze_moad_neighbourhood_ablate(files, capsys) -> None:
    d, img, txt, digit, colour = files
    base = ["--image-emb", str(d / "img.npy"), "--text-emb", str(d / "txt.pt"), "--labels",
            str(d / "labels.npz")]
    code, res = _run(capsys, ["analyze", "moad", *base])
    assert code == 0
    mi = moad(img, digit, {"colour": colour})["moad"]
    mt = moad(txt, digit, {"colour": colour})["moad"]
    assert res["moad_image"] == pytest.approx(mi) and res["moad"] == pytest.approx((mi + mt) / 2)
    code, res = _run(capsys, ["analyze", "neighbourhood", *base])
    assert res["kendall"] == pytest.approx(neighbourhood_test(img, txt, digit)["kendall"])
    code, res = _run(capsys, ["analyze", "ablate-dims", *base, "--max-k", "3"])
    assert code == 0 and res["k"] == [0, 1, 2, 3] and len(res["digit_acc"]) == 4
    assert res["rmg"] == pytest.approx(gap_stats(img, txt)["rmg"], rel=1e-5)


def test_analyze_bad_file_exit_2(files, capsys, tmp_path) -> None:
    d, *_ = files
    bad = tmp_path / "broken.npy"
    bad.write_bytes(b"garbage")
    code = main(["analyze", "gap", "--image-emb", str(bad), "--text-emb", str(d / "txt.pt")])
    assert code == 2
    assert "broken.npy" in capsys.readouterr().err
    code = main(["analyze", "moad", "--image-emb", str(d / "img.npy"), "--text-emb",
                 str(d / "txt.pt")])
    assert code == 2
    assert "digit" in capsys.readouterr().err


def test_cli_analyze_from_run(tiny_mad, capsys) -> None:
    code = main(["analyze", "gap", "--run", "clip", "--data", f"mad:{tiny_mad}"])
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == TINY_MAD_TEST_IMAGES and 0 <= res["rmg"] <= 1
    code = main(["analyze", "gap", "--run", "clip"])
    assert code == 2


def test_moad_on_real_data_from_csv_columns(tmp_path, tiny_mad, capsys) -> None:
    """MIT-States / UT-Zappos setting: object and attribute labels from CSV columns."""

    from PIL import Image


    (tmp_path / "img").mkdir()
    lines = ["filepath\ttitle\tobject\tstate"]
    objects, states = ["apple", "shoe", "car"], ["old", "new"]
    for i in range(12):
        obj, state = objects[i % 3], states[i % 2]
        Image.new("RGB", (20, 20), (20 * i, 100, 50)).save(tmp_path / "img" / f"{i}.png")
        lines.append(f"img/{i}.png\t{state} {obj}\t{obj}\t{state}")
    (tmp_path / "d.tsv").write_text("\n".join(lines) + "\n")
    run = tiny_run(tmp_path / "run", tiny_mad)
    args = ["analyze", "moad", "--model", str(run), "--data", f"csv:{tmp_path / 'd.tsv'}"]
    assert main([*args, "--object-column", "object", "--attribute-column", "state"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 12 and set(res["per_slot_image"]) == {"state"}
    assert -1 <= res["moad_image"] <= 1 and -1 <= res["moad_text"] <= 1
    assert main([*args, "--object-column", "nope"]) == 2
    assert "label column(s) ['nope'] not found" in capsys.readouterr().err


def test_analyze_dims_and_close_gap(files, capsys) -> None:
    from clipspace.analysis.close_gap import shift
    from clipspace.analysis.dims import dims_analysis

    d, img, txt, *_ = files
    base = ["--image-emb", str(d / "img.npy"), "--text-emb", str(d / "txt.pt"), "--labels",
            str(d / "labels.npz")]
    code, res = _run(capsys, ["analyze", "dims", *base, "--plot", str(d / "dims")])
    assert code == 0 and res["pair"] == dims_analysis(img, txt)["pair"]
    assert len(res["figures"]) == 3 and (d / "dims" / "dim_scatter.png").exists()
    code, res = _run(capsys, ["analyze", "close-gap", *base, "--method", "shift"])
    assert code == 0 and list(res["methods"]) == ["shift"]
    assert res["methods"]["shift"]["after"]["rmg"] == pytest.approx(
        gap_stats(*shift(img, txt))["rmg"], rel=1e-5)
    code, res = _run(capsys, ["analyze", "close-gap", *base, "--drop-k", "2"])
    assert code == 0 and set(res["methods"]) == {"drop", "shift", "ideal-words"}
    assert res["methods"]["ideal-words"]["ideal_word_cos"]["without_u0"] <= 1.0


def test_analyze_close_gap_bad_flags_exit_2(files, capsys) -> None:
    d, *_ = files
    base = ["analyze", "close-gap", "--image-emb", str(d / "img.npy"), "--text-emb",
            str(d / "txt.pt")]
    assert main([*base, "--drop-k", "0"]) == 2
    assert "--drop-k" in capsys.readouterr().err
    assert main([*base, "--drop-k", "8"]) == 2  # D = 8: at most 7 can be dropped
    assert "--drop-k" in capsys.readouterr().err
    assert main([*base, "--method", "ideal-words"]) == 2  # no labels
    assert "needs factor labels" in capsys.readouterr().err


def test_cli_close_gap_from_run(tiny_mad, capsys) -> None:
    code = main(["analyze", "close-gap", "--run", "clip", "--data", f"mad:{tiny_mad}",
                 "--method", "ideal-words"])
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == TINY_MAD_TEST_IMAGES and 0 <= res["methods"]["ideal-words"]["after"]["rmg"]
