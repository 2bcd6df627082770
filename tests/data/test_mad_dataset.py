"""MADDataset on a tiny MAD directory written by hand (``tests.helpers.mad.write_mad``: no
dependency on the generator), and once on the generated tiny MAD."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from clipspace.data import mad_schema as S
from clipspace.data.captions import parse_caption
from clipspace.data.mad import MADDataset
from clipspace.errors import DataError
from tests.helpers.mad import TINY_MAD_LIMIT, write_mad


@pytest.fixture()
def mad_dir(tmp_path: Path) -> Path:
    return write_mad(tmp_path / "mad")


def test_items_and_labels(mad_dir: Path) -> None:
    ds = MADDataset(mad_dir, split="train")
    test = MADDataset(mad_dir, split="test")
    assert len(ds) == 3 * 24 and len(test) == 24
    assert set(ds.indices.tolist()).isdisjoint(test.indices.tolist())
    images = np.load(mad_dir / "images.npy")
    meta = list(csv.DictReader(open(mad_dir / "metadata.csv")))
    for i in (0, 5, len(ds) - 1):
        item = ds[i]
        assert item["image"].shape == (3, 28, 28) and item["image"].dtype == torch.float32
        raw = torch.from_numpy(images[item["index"]]).permute(2, 0, 1).float() / 255
        assert torch.allclose(item["image"], (raw - 0.5) / 0.5)
        row = meta[item["index"]]
        for k in S.LABEL_KEYS:
            assert item[k] == int(row[k]) == ds.labels[k][i]
        # full captions (num_attrs=5) name every label of the image exactly
        assert parse_caption(item["text"]) == {k: item[k] for k in S.LABEL_KEYS}
    assert ds.captions()[5] == ds[5]["text"]
    picks = [7, 0, 7, -1, 30]
    batched = ds.__getitems__(picks)
    for i, got in zip(picks, batched, strict=True):
        want = ds[i]
        assert torch.equal(got["image"], want["image"])
        assert {k: v for k, v in got.items() if k != "image"} == {
            k: v for k, v in want.items() if k != "image"
        }


def test_transform_and_max_samples(mad_dir: Path) -> None:
    ds = MADDataset(mad_dir, transform=lambda a: torch.tensor(a.shape), max_samples=10)
    assert len(ds) == 10
    assert ds[3]["image"].tolist() == [28, 28, 3]
    with pytest.raises(IndexError):
        ds[10]


def test_caption_modes_on_dataset(mad_dir: Path) -> None:
    ds = MADDataset(mad_dir, num_attrs=2, main_object="colour")
    for i in range(len(ds)):
        labels = parse_caption(ds[i]["text"])
        assert len(labels) == 3 and labels["colour"] == ds.labels["colour"][i]
        assert labels["digit"] == ds.labels["digit"][i]
    only = MADDataset(mad_dir, objects_only=True)
    assert only.captions() == [S.DIGIT_WORDS[d] for d in only.labels["digit"]]


def test_redraw_per_epoch(mad_dir: Path) -> None:
    fixed = MADDataset(mad_dir, num_attrs=2, seed=3)
    before = fixed.captions()
    fixed.set_epoch(1)
    assert fixed.captions() == before
    redraw = MADDataset(mad_dir, num_attrs=2, seed=3, redraw_per_epoch=True)
    e0 = redraw.captions()
    assert e0 == before  # epoch 0 of a redraw plan is the fixed plan
    redraw.set_epoch(1)
    e1 = redraw.captions()
    assert e1 != e0
    redraw.set_epoch(0)
    assert redraw.captions() == e0


def test_bad_directories(tmp_path: Path, mad_dir: Path) -> None:
    with pytest.raises(DataError, match="nothing: MAD directory not found"):
        MADDataset(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="manifest.json"):
        MADDataset(tmp_path / "empty")
    (mad_dir / "manifest.json").write_text(json.dumps({"format": S.FORMAT, "version": 99}))
    with pytest.raises(DataError, match=r"manifest\.json.*version"):
        MADDataset(mad_dir)
    (mad_dir / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="manifest.json"):
        MADDataset(mad_dir)


def test_bad_metadata(tmp_path: Path) -> None:
    root = write_mad(tmp_path / "m", n_digits=1, test_digits=0)
    text = (root / "metadata.csv").read_text().splitlines()
    (root / "metadata.csv").write_text("\n".join([text[0].replace("colour", "hue"), *text[1:]]))
    with pytest.raises(DataError, match="colour"):
        MADDataset(root)
    bad = text[:3] + [text[3].rsplit(",", 1)[0] + ",9"] + text[4:]
    (root / "metadata.csv").write_text("\n".join(bad))
    with pytest.raises(DataError, match="line 4"):
        MADDataset(root)
    with pytest.raises(DataError, match="split"):
        MADDataset(write_mad(tmp_path / "ok"), split="validation")
    with pytest.raises(DataError, match="num_attrs"):
        MADDataset(tmp_path / "ok", num_attrs=6)
    with pytest.raises(DataError, match="'test' has no images"):
        MADDataset(write_mad(tmp_path / "notest", n_digits=1, test_digits=0), split="test")


def test_generated_directory(tiny_mad: Path) -> None:
    """End to end with the real generator (the shared tiny MAD of tests/conftest.py)."""
    from clipspace.data.chains import mad_chains
    from clipspace.data.tokenizer import get_tokenizer

    root = tiny_mad
    train, test = MADDataset(root), MADDataset(root, split="test")
    assert len(train) + len(test) == TINY_MAD_LIMIT * 24 and len(test) > 0
    tok = get_tokenizer(root)
    texts = train.captions()
    assert [tok.decode(r) for r in tok(texts[:50])] == texts[:50]
    assert all(parse_caption(t) == {k: int(train.labels[k][i]) for k in S.LABEL_KEYS}
               for i, t in enumerate(texts))
    assert len(mad_chains(root)) == len(test)
