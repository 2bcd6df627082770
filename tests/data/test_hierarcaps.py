"""HierarCaps readers on small files the test writes, plus the real test set when present."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipspace.data.hierarcaps import (
    HierarCapsImages,
    image_name,
    read_hierarcaps_test,
    read_hierarcaps_train,
    split_chain,
)
from clipspace.data.transforms import image_transform
from clipspace.errors import DataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "hierarcaps"
T = image_transform(16)
URL = "http://images.cocodataset.org/val2014/COCO_val2014_{:012d}.jpg"


def _test_csv(tmp_path: Path, n: int = 3, make_images: bool = True) -> Path:
    lines = ["id,captions,image_url"]
    (tmp_path / "images").mkdir(exist_ok=True)
    for i in range(n):
        chain = f"thing{i} => red thing{i} => red thing{i}, on table => A red thing{i} on a table."
        lines.append(f'{i},"{chain}",{URL.format(i)}')
        if make_images:
            img = np.full((30, 40, 3), 20 * i, np.uint8)
            Image.fromarray(img).save(tmp_path / "images" / image_name(URL.format(i)))
    path = tmp_path / "test.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_split_chain() -> None:
    assert split_chain("a => b c => d, e => f.", "x") == ["a", "b c", "d, e", "f."]
    with pytest.raises(DataError, match="found 3"):
        split_chain("a => b => c", "here")
    with pytest.raises(DataError, match="empty"):
        split_chain("a =>  => c => d", "here")


def test_read_test_rows(tmp_path: Path) -> None:
    rows = read_hierarcaps_test(_test_csv(tmp_path))
    assert len(rows) == 3
    r = rows[1]
    assert r.id == "1" and r.line == 3
    assert r.captions[:3] == ["thing1", "red thing1", "red thing1, on table"]
    assert r.captions[3] == "A red thing1 on a table."
    assert r.image_path == tmp_path / "images" / "COCO_val2014_000000000001.jpg"


def test_missing_image_reported(tmp_path: Path) -> None:
    csv = _test_csv(tmp_path)
    (tmp_path / "images" / image_name(URL.format(2))).unlink()
    with pytest.warns(UserWarning, match="1 of 3 images not found"):
        rows = read_hierarcaps_test(csv, tmp_path / "images")
    assert [r.image_path is None for r in rows] == [False, False, True]
    with pytest.raises(DataError, match="COCO_val2014_000000000002.jpg"):
        HierarCapsImages(csv, transform=T, max_bad_fraction=0.1)
    with pytest.warns(UserWarning, match="skipping 1"):
        ds = HierarCapsImages(csv, transform=T, max_bad_fraction=0.5)
    assert len(ds) == 2 and [r.id for r in ds.missing] == ["2"]


def test_test_csv_errors(tmp_path: Path) -> None:
    bad_cols = tmp_path / "cols.csv"
    bad_cols.write_text("id,caption,url\n0,a => b => c => d,x.jpg\n")
    with pytest.raises(DataError) as err:
        read_hierarcaps_test(bad_cols, tmp_path)
    assert "captions" in str(err.value) and "['id', 'caption', 'url']" in str(err.value)
    short = tmp_path / "short.csv"
    short.write_text("id,captions,image_url\n0,a => b => c => d,x.jpg\n1,a => b => c,y.jpg\n")
    with pytest.raises(DataError, match=rf"{short}, line 3: .*found 3"):
        read_hierarcaps_test(short, tmp_path)


def test_dataset_items(tmp_path: Path) -> None:
    ds = HierarCapsImages(_test_csv(tmp_path), transform=T)
    item = ds[2]
    assert item["image"].shape == (3, 16, 16) and item["index"] == 2
    assert item["text"] == "A red thing2 on a table."
    assert item["captions"][0] == "thing2" and len(item["captions"]) == 4
    assert ds.chains()[0][1] == "red thing0"


def test_dataset_skips_corrupt_image(tmp_path: Path) -> None:
    csv = _test_csv(tmp_path, n=4)
    (tmp_path / "images" / image_name(URL.format(1))).write_bytes(b"garbage")
    ds = HierarCapsImages(csv, transform=T, max_bad_fraction=0.25)
    assert ds[1]["index"] == 2
    assert ds.bad_images.bad == 1
    assert not torch.equal(ds[0]["image"], ds[2]["image"])


def _train_csv(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "train.csv"
    path.write_text(
        "positive,negative\n"
        '"dog => brown dog => brown dog, running => A brown dog running.",'
        '"cat => brown cat => brown dog, sleeping => A brown dog sleeping."\n'
        "car => red car => red car parked => A red car parked here.,"
        "bus => blue car => red car moving => A red car moving fast.\n" + extra
    )
    return path


def test_read_train_chains(tmp_path: Path) -> None:
    chains = read_hierarcaps_train(_train_csv(tmp_path))
    assert len(chains) == 2
    assert chains[0].positive == ["dog", "brown dog", "brown dog, running", "A brown dog running."]
    assert chains[0].negative[2] == "brown dog, sleeping"
    assert chains[1].negative[0] == "bus" and chains[1].index == 1
    assert all(len(c.positive) == len(c.negative) == 4 for c in chains)


def test_train_malformed_chain_names_line(tmp_path: Path) -> None:
    path = _train_csv(tmp_path, extra="a => b => c => d,x => y\n")
    with pytest.raises(DataError, match=rf"{path}, line 4, column 'negative'.*found 2"):
        read_hierarcaps_train(path)
    path.write_text("pos,neg\na => b => c => d,e => f => g => h\n")
    with pytest.raises(DataError, match=r"\['pos', 'neg'\]"):
        read_hierarcaps_train(path)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared HierarCaps data not present")
def test_real_hierarcaps_test_set() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no missing images expected
        rows = read_hierarcaps_test(SHARED / "hierarcaps_test.csv", SHARED / "images")
    assert len(rows) == 1000
    assert all(len(r.captions) == 4 and all(r.captions) for r in rows)
    assert all(r.image_path is not None and r.image_path.is_file() for r in rows)
    assert rows[1].captions[:2] == ["bird", "blue bird"]
    # generic -> specific: the COCO caption is the longest level almost always
    longest_last = sum(len(r.captions[3]) >= max(len(c) for c in r.captions) for r in rows)
    assert longest_last > 900
    ds = HierarCapsImages(SHARED / "hierarcaps_test.csv", transform=image_transform(32))
    item = ds[1]
    assert item["image"].shape == (3, 32, 32) and item["captions"] == rows[1].captions
    assert ds.bad_images.bad == 0
