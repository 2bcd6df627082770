"""The MAD generator: layout, labels vs pixels, determinism, atomicity, overwrite refusal."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from clipspace.data import mad_generate as G
from clipspace.data import mad_schema as S
from clipspace.data.mnist import load_mnist
from tests.helpers.mad import TINY_MAD_LIMIT

# the layout tests read the shared tiny MAD (tests/conftest.py: ``tiny_mad``, generated with
# seed 0 from LIMIT embedded digits)
LIMIT = TINY_MAD_LIMIT


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / "metadata.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_layout_manifest_and_metadata_agree(tiny_mad: Path) -> None:
    manifest = json.loads((tiny_mad / "manifest.json").read_text())
    images = np.load(tiny_mad / "images.npy", mmap_mode="r")
    rows = _rows(tiny_mad)
    n = LIMIT * G.N_VARIANTS
    assert images.shape == (n, 28, 28, 3) and images.dtype == np.uint8
    assert list(rows[0]) == list(S.METADATA_COLUMNS) and len(rows) == n
    assert manifest["format"] == S.FORMAT and manifest["version"] == S.VERSION
    assert manifest["seed"] == 0 and manifest["source"] == "embedded"
    counts = manifest["counts"]
    splits = [r["split"] for r in rows]
    assert counts["train"] == splits.count("train") and counts["test"] == splits.count("test")
    assert counts["train"] + counts["test"] == counts["total"] == n
    assert counts["test"] == round(0.2 * LIMIT) * G.N_VARIANTS
    assert manifest["vocabulary"]["colour"] == list(S.VALUES["colour"])
    assert [int(r["index"]) for r in rows] == list(range(n))
    # split by source digit: all 24 variants of a digit share the split, digit and source
    src_images, src_labels = load_mnist("embedded")
    for d in range(LIMIT):
        block = rows[d * 24 : (d + 1) * 24]
        assert len({(r["split"], r["source"], r["digit"]) for r in block}) == 1
        assert int(block[0]["digit"]) == src_labels[int(block[0]["source"])]
        combos = [tuple(int(r[s]) for s in S.COMBO_SLOTS) for r in block]
        assert combos == list(G.COMBOS)
    assert (tiny_mad / "tokenizer.json").is_file()
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert tiny_mad.stat().st_mode & 0o777 == 0o777 & ~umask  # not left at mkdtemp's 0700


def test_split_is_stratified_and_exact() -> None:
    labels = np.repeat(np.arange(10), 50)
    test = G.split_digits(labels, 0.2, seed=3)
    assert test.sum() == 100
    np.testing.assert_array_equal(np.bincount(labels[test], minlength=10), np.full(10, 10))
    np.testing.assert_array_equal(test, G.split_digits(labels, 0.2, seed=3))
    assert not np.array_equal(test, G.split_digits(labels, 0.2, seed=4))


def test_tokenizer_covers_caption_words(tiny_mad: Path) -> None:
    tok_mod = pytest.importorskip("clipspace.data.tokenizer")
    tok = tok_mod.get_tokenizer(tiny_mad / "tokenizer.json")
    text = "thinning-3-red-small-swelling-unbroken"
    assert tok.decode(tok.encode(text)).strip() == text


def test_colours_match_labels(tiny_mad: Path) -> None:
    images = np.load(tiny_mad / "images.npy")
    colours = np.array([int(r["colour"]) for r in _rows(tiny_mad)])
    assert len(np.unique(colours)) >= 5  # drawn per sample
    names = S.VALUES["colour"]
    for ci, name in enumerate(names):
        sel = images[colours == ci].astype(int)
        if not len(sel):
            continue
        r, g, b = sel[..., 0], sel[..., 1], sel[..., 2]
        if name == "gray":
            assert (r == g).all() and (g == b).all()
        else:
            on = {c: name in on_names for c, on_names in enumerate(
                [("red", "magenta", "yellow"), ("green", "cyan", "yellow"),
                 ("blue", "cyan", "magenta")])}
            for ch in range(3):
                assert (sel[..., ch].max() > 0) == on[ch], (name, ch)
            if name in ("cyan", "magenta", "yellow"):
                assert sel.max() == 255


def test_variants_differ_as_labels_say() -> None:
    images, _ = load_mnist("embedded")
    var = G.digit_variants(images[1234], G.digit_rng(0, 1234)).astype(np.int64)
    idx = {combo: k for k, combo in enumerate(G.COMBOS)}
    ink = var.sum(axis=(1, 2))
    plain, thick, thin = (S.VALUES["stroke"].index(v) for v in ("plain", "thickening", "thinning"))
    for sw in (0, 1):
        for fr in (0, 1):
            for sc in (0, 1):
                assert ink[idx[(thin, sw, fr, sc)]] < ink[idx[(plain, sw, fr, sc)]]
                assert ink[idx[(plain, sw, fr, sc)]] < ink[idx[(thick, sw, fr, sc)]]
    for st in range(3):
        for sw in (0, 1):
            for sc in (0, 1):
                broken, whole = var[idx[(st, sw, 1, sc)]], var[idx[(st, sw, 0, sc)]]
                assert (broken != whole).any()
                if sw == 0:
                    assert ink[idx[(st, 0, 1, sc)]] < ink[idx[(st, 0, 0, sc)]]
            for fr in (0, 1):
                assert (var[idx[(st, 1, fr, 0)]] != var[idx[(st, 0, fr, 0)]]).any()
                small, large = var[idx[(st, 0, fr, 1)]], var[idx[(st, 0, fr, 0)]]
                # small: 21x21 pasted at offset 3-4, so 3 empty rows/cols on every side
                assert small[:3].max() == 0 and small[-3:].max() == 0
                assert small[:, :3].max() == 0 and small[:, -3:].max() == 0
                assert small.sum() < large.sum()
    plain_large = var[idx[(plain, 0, 0, 0)]]
    np.testing.assert_allclose(plain_large, images[1234], atol=80)  # plain ~ the digit


def test_deterministic_and_worker_independent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(G, "CHUNK_DIGITS", 3)
    a = G.generate_mad(tmp_path / "a", limit=8, seed=5, workers=1, progress=False)
    b = G.generate_mad(tmp_path / "b", limit=8, seed=5, workers=2, progress=False)
    c = G.generate_mad(tmp_path / "c", limit=8, seed=6, workers=1, progress=False)
    np.testing.assert_array_equal(np.load(a / "images.npy"), np.load(b / "images.npy"))
    assert (a / "metadata.csv").read_text() == (b / "metadata.csv").read_text()
    assert not np.array_equal(np.load(a / "images.npy"), np.load(c / "images.npy"))


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    out = G.generate_mad(tmp_path / "m", limit=2, progress=False)
    stamp = (out / "manifest.json").read_text()
    with pytest.raises(FileExistsError):
        G.generate_mad(out, limit=2, progress=False)
    assert (out / "manifest.json").read_text() == stamp
    G.generate_mad(out, limit=3, seed=1, progress=False, overwrite=True)
    assert json.loads((out / "manifest.json").read_text())["counts"]["total"] == 3 * 24


def test_interrupted_run_leaves_nothing_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(G, "_write_metadata", boom)
    with pytest.raises(KeyboardInterrupt):
        G.generate_mad(tmp_path / "m", limit=2, progress=False)
    assert not (tmp_path / "m").exists()
    assert not list(tmp_path.rglob("manifest.json")) and not list(tmp_path.rglob("images.npy"))


def test_killed_run_leaves_no_complete_looking_directory(tmp_path: Path) -> None:
    """A process that dies without cleanup (like SIGKILL) leaves only a hidden partial dir."""
    import multiprocessing as mp
    import os

    if "fork" not in mp.get_all_start_methods():
        pytest.skip("needs fork")

    def child() -> None:
        def die(*args: object, **kwargs: object) -> None:
            os._exit(9)  # no finally blocks, no cleanup: the images are written, nothing else

        G._write_metadata = die  # type: ignore[assignment]
        G.generate_mad(tmp_path / "m", limit=2, progress=False)

    proc = mp.get_context("fork").Process(target=child)
    proc.start()
    proc.join(60)
    assert proc.exitcode == 9
    assert not (tmp_path / "m").exists()
    leftovers = list(tmp_path.iterdir())
    assert leftovers and all(p.name.startswith(".m.") and p.name.endswith(".partial")
                             for p in leftovers)
    assert (leftovers[0] / "images.npy").exists()  # the work was under way ...
    assert not (leftovers[0] / "manifest.json").exists()  # ... but nothing marks it complete
