"""Bad embedding and label input is answered: NaN / Inf rows, N = 0 or 1, D = 0, huge or tiny
values, negative or huge label ids, a negative ``--max-k``; JSON output never holds a bare NaN."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clipspace.analysis.gap import gap_stats
from clipspace.analysis.moad import moad
from clipspace.analysis.neighbourhood import neighbourhood_test
from clipspace.analysis.run import run_analysis
from clipspace.cli import main
from clipspace.data.embeddings_io import load_embeddings
from clipspace.errors import DataError


def _strict_json(text: str) -> dict:
    """json.loads that fails on NaN / Infinity (which json.dumps writes by default)."""
    def refuse(name: str) -> None:
        raise AssertionError(f"bare {name} in the JSON output")

    return json.loads(text, parse_constant=refuse)


def _pairs(n: int = 40, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                            np.ndarray]:
    rng = np.random.default_rng(seed)
    digit = rng.integers(0, 4, n)
    colour = rng.integers(0, 3, n)
    img = (rng.normal(size=(n, d)) + 2 * np.eye(d)[digit] + 1.0).astype(np.float32)
    txt = (img + rng.normal(size=(n, d)) - 1.0).astype(np.float32)
    return img, txt, digit, colour


def _files(tmp_path: Path, img: np.ndarray, txt: np.ndarray, **labels: np.ndarray) -> list[str]:
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "txt.npy", txt)
    args = ["--image-emb", str(tmp_path / "img.npy"), "--text-emb", str(tmp_path / "txt.npy")]
    if labels:
        np.savez(tmp_path / "labels.npz", **labels)
        args += ["--labels", str(tmp_path / "labels.npz")]
    return args


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rows_rejected_with_file_and_count(tmp_path: Path, bad: float,
                                                      capsys: pytest.CaptureFixture) -> None:
    img, txt, *_ = _pairs()
    img[[3, 7, 8], 1] = bad
    args = _files(tmp_path, img, txt)
    with pytest.raises(DataError, match=r"img\.npy: 3 of 40 rows contain NaN or Inf"):
        load_embeddings(tmp_path / "img.npy")
    assert main(["analyze", "gap", *args]) == 2
    err = capsys.readouterr().err
    assert "img.npy: 3 of 40 rows contain NaN or Inf" in err


def test_non_finite_in_memory_rejected() -> None:
    img, txt, *_ = _pairs()
    txt[0, 0] = np.nan
    with pytest.raises(DataError, match="text embeddings: 1 of 40 rows contain NaN or Inf"):
        run_analysis("gap", img, txt)
    assert not gap_stats(img, txt)["rmg"] == 0.0  # NaN in, NaN out: never a wrong 0.0


@pytest.mark.parametrize("shape,needle", [((0, 6), "no rows"), ((5, 0), "no columns")])
def test_empty_embeddings_rejected(tmp_path: Path, shape: tuple[int, int], needle: str,
                                   capsys: pytest.CaptureFixture) -> None:
    args = _files(tmp_path, np.zeros(shape, np.float32), np.zeros(shape, np.float32))
    with pytest.raises(DataError, match=needle):
        load_embeddings(tmp_path / "img.npy")
    assert main(["analyze", "gap", *args]) == 2
    err = capsys.readouterr().err
    assert "img.npy" in err and needle in err


@pytest.mark.parametrize("what", ["gap", "moad", "ablate-dims", "neighbourhood"])
def test_single_row_is_a_clear_error(tmp_path: Path, what: str,
                                     capsys: pytest.CaptureFixture) -> None:
    img, txt, digit, colour = _pairs(n=1)
    args = _files(tmp_path, img, txt, digit=digit, colour=colour)
    assert main(["analyze", what, *args]) == 2
    assert "at least 2" in capsys.readouterr().err


@pytest.mark.parametrize("scale", [1e30, 1e-30])
def test_huge_and_tiny_values_equal_normal_scale(scale: float) -> None:
    img, txt, digit, colour = _pairs()
    big_i, big_t = (img * scale).astype(np.float32), (txt * scale).astype(np.float32)
    labels = {"digit": digit, "colour": colour}
    for what in ("gap", "moad", "ablate-dims", "neighbourhood"):
        want = run_analysis(what, img, txt, labels, max_k=3)
        got = run_analysis(what, big_i, big_t, labels, max_k=3)
        _assert_close(got, want, what)


def _assert_close(got: object, want: object, where: str) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), where
        for k in want:
            _assert_close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), where  # type: ignore[arg-type]
        for i, (g, w) in enumerate(zip(got, want, strict=True)):  # type: ignore[call-overload]
            _assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-5, nan_ok=True), where
    else:
        assert got == want, where


def test_label_ids_negative_or_huge_are_reindexed(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    img, txt, digit, colour = _pairs()
    dense = _files(tmp_path, img, txt, digit=digit, colour=colour)
    odd_dir = tmp_path / "odd"
    odd_dir.mkdir()
    odd = _files(odd_dir, img, txt, digit=digit * 7 + 10**12, colour=colour - 5)
    for what in ("moad", "neighbourhood", "ablate-dims"):
        assert main(["analyze", what, *dense, "--max-k", "2"]) == 0
        want = _strict_json(capsys.readouterr().out)
        assert main(["analyze", what, *odd, "--max-k", "2"]) == 0
        got = _strict_json(capsys.readouterr().out)
        if what == "neighbourhood":
            assert got["classes"] == [int(c) * 7 + 10**12 for c in want.pop("classes")]
            got.pop("classes")
        _assert_close(got, want, what)


def test_library_label_functions_take_any_ids() -> None:
    img, txt, digit, colour = _pairs()
    want = moad(img, digit, {"colour": colour})
    got = moad(img, digit - 3, {"colour": colour + 10**12})
    _assert_close(got, want, "moad")
    want = neighbourhood_test(img, txt, digit)
    got = neighbourhood_test(img, txt, digit - 100)
    assert got["kendall"] == pytest.approx(want["kendall"])
    assert got["classes"] == [c - 100 for c in want["classes"]]


def test_negative_max_k_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    img, txt, digit, _ = _pairs()
    args = _files(tmp_path, img, txt, digit=digit)
    assert main(["analyze", "ablate-dims", *args, "--max-k", "-3"]) == 2
    assert "--max-k" in capsys.readouterr().err


def test_json_output_has_null_and_a_note_instead_of_nan(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    img, txt, digit, _ = _pairs()
    one_colour = np.zeros_like(digit)  # no cross-colour pairs: that MOAD is undefined
    args = _files(tmp_path, img, txt, digit=digit, colour=one_colour)
    out = tmp_path / "moad.json"
    assert main(["analyze", "moad", *args, "--out", str(out)]) == 0
    printed = _strict_json(capsys.readouterr().out)
    written = _strict_json(out.read_text())
    assert printed == written
    assert printed["moad"] is None and printed["per_slot_image"]["colour"] is None
    assert any("colour" in note and "one value" in note for note in printed["notes"])
