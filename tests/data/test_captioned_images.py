"""Images with several captions each, from CSV / COCO JSON / WebDataset shards, and bad input."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset
from PIL import Image

from clipspace.data.captioned_images import (
    CaptionedImages,
    pick_csv_layout,
    read_coco_captions,
    read_csv_groups,
    read_wds_groups,
    wds_captions,
)
from clipspace.data.transforms import image_transform
from clipspace.errors import DataError

T = image_transform(8, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _png_bytes(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((10, 12, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _images(folder: Path, n: int = 3) -> list[str]:
    """``img{k}.png`` with pixel value 40 k; returns the file names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"img{k}.png" for k in range(n)]
    for k, name in enumerate(names):
        (folder / name).write_bytes(_png_bytes(40 * k))
    return names


ROWS = [("img0.png", "a"), ("img1.png", "b"), ("img0.png", "c"), ("img2.png", "d"),
        ("img1.png", "e")]


def _write_csv(path: Path, rows=ROWS, sep: str = "\t", header=("filepath", "title")) -> Path:
    lines = [sep.join(header)] + [sep.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_csv_rows_sharing_an_image_are_one_image(tmp_path: Path) -> None:
    _images(tmp_path)
    groups = read_csv_groups(_write_csv(tmp_path / "caps.tsv"))
    assert [Path(g.source).name for g in groups] == ["img0.png", "img1.png", "img2.png"]
    assert [g.captions for g in groups] == [["a", "c"], ["b", "e"], ["d"]]
    ds = CaptionedImages(groups, T)
    item = ds[1]
    assert item["text"] == "b" and item["texts"] == ["b", "e"] and item["index"] == 1
    assert torch.allclose(item["image"], torch.full((3, 8, 8), 40 / 255), atol=1e-6)
    assert ds.captions() == [["a", "c"], ["b", "e"], ["d"]]


def test_csv_comma_autodetected_and_image_root(tmp_path: Path) -> None:
    _images(tmp_path / "pics")
    path = _write_csv(tmp_path / "caps.csv", sep=",")
    groups = read_csv_groups(path, image_root=tmp_path / "pics")
    assert [g.captions for g in groups] == [["a", "c"], ["b", "e"], ["d"]]
    # a second layout (e.g. the run's own columns) is tried when the first does not fit
    layouts = [("image", "caption", "\t"), ("filepath", "title", "\t")]
    assert pick_csv_layout(path, "filepath,title", layouts) == ("filepath", "title", ",")
    assert pick_csv_layout(path, "image\tcaption", layouts) == ("image", "caption", "\t")
    # a .tsv is not sniffed for commas: the reader names the missing columns
    tsv = _write_csv(tmp_path / "caps.tsv", sep=",")
    with pytest.raises(DataError, match="missing column"):
        read_csv_groups(tsv, image_root=tmp_path / "pics")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty file"),
        (b"filepath\tcaption\nimg0.png\ta\n", r"missing column\(s\) \['title'\]"),
        (b"filepath\ttitle\n", "no rows"),
        (b"filepath\ttitle\nimg0.png\ta\nimg9.png\tb\n",
         r"line 3: image file .*img9.png not found"),
        (b"filepath\ttitle\nimg0.png\ta\nimg1.png\tcaf\xe9\n", "line 3: not UTF-8"),
        (b"filepath\ttitle\nimg0.png\t\n", "line 2: empty 'title'"),
    ],
)
def test_csv_bad_input_names_file_and_line(tmp_path: Path, content: bytes, match: str) -> None:
    _images(tmp_path)
    path = tmp_path / "bad.tsv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match) as err:
        read_csv_groups(path)
    assert str(path) in str(err.value)


def test_missing_csv_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_csv_groups(tmp_path / "nothing.tsv")


def _coco(folder: Path, names: list[str]) -> dict:
    return {
        "images": [{"id": 10 + k, "file_name": n} for k, n in enumerate(names)]
        + [{"id": 99, "file_name": "uncaptioned.png"}],
        "annotations": [
            {"id": 1, "image_id": 11, "caption": "b"},
            {"id": 2, "image_id": 10, "caption": " a "},
            {"id": 3, "image_id": 11, "caption": "e"},
            {"id": 4, "image_id": 12, "caption": "d"},
            {"id": 5, "image_id": 10, "caption": "c"},
        ],
    }


def test_coco_captions_in_image_order(tmp_path: Path) -> None:
    names = _images(tmp_path / "val")
    ann = tmp_path / "ann" / "captions.json"
    ann.parent.mkdir()
    ann.write_text(json.dumps(_coco(tmp_path, names)))
    with pytest.warns(UserWarning, match="1 of 4 images have no caption"):
        groups = read_coco_captions(ann, tmp_path / "val")
    assert [Path(g.source).name for g in groups] == names
    assert [g.captions for g in groups] == [["a", "c"], ["b", "e"], ["d"]]
    # images default to the JSON's folder: missing there
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match=r"images\[0\]\.file_name: image file .* not found"):
            read_coco_captions(ann)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"images": [], "annotations": [\n  {"image_id": 1,}\n]}',
         "line 2, column 18: invalid JSON"),
        ('{"annotations": []}', "no 'images' list"),
        ('{"images": [{"id": 1}], "annotations": []}', r"images\[0\] has no 'file_name'"),
        ('{"images": [{"id": 1, "file_name": "img0.png"}], "annotations": '
         '[{"image_id": 1, "caption": "x"}, {"image_id": 2, "caption": "y"}]}',
         r"annotations\[1\]\.image_id 2 is not an id"),
        ('{"images": [{"id": 1, "file_name": "img0.png"}], "annotations": '
         '[{"image_id": 1}]}', r"annotations\[0\] has no 'caption'"),
        ('{"images": [{"id": 1, "file_name": "img0.png"}], "annotations": []}', "no captioned"),
    ],
)
def test_coco_bad_input_names_file_and_key(tmp_path: Path, text: str, match: str) -> None:
    _images(tmp_path)
    path = tmp_path / "bad.json"
    path.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match=match) as err:
            CaptionedImages(read_coco_captions(path), T, name=str(path))
    assert str(path) in str(err.value)


def test_coco_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(b'{"images": [],\n"annotations": [{"caption": "caf\xe9"}]}')
    with pytest.raises(DataError, match=r"bad.json, line 2: not UTF-8"):
        read_coco_captions(path)


def _shard(path: Path, samples: list[dict]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        writer = webdataset.TarWriter(str(path))
    with writer:
        for s in samples:
            writer.write(s)


def test_wds_captions_lists_and_identical_images_merged(tmp_path: Path) -> None:
    _shard(tmp_path / "s-000.tar", [
        {"__key__": "k0", "png": _png_bytes(0), "txt": b"a"},
        {"__key__": "k1", "png": _png_bytes(40), "json": json.dumps({"captions": ["b", "e"]})
         .encode()},
    ])
    _shard(tmp_path / "s-001.tar", [
        {"__key__": "k2", "png": _png_bytes(0), "json": json.dumps({"caption": "c"}).encode()},
        {"__key__": "k3", "png": _png_bytes(80), "json": b'"d"'},
    ])
    groups = read_wds_groups(str(tmp_path / "s-{000..001}.tar"))
    assert [g.captions for g in groups] == [["a", "c"], ["b", "e"], ["d"]]
    ds = CaptionedImages(groups, T)
    assert torch.allclose(ds[2]["image"], torch.full((3, 8, 8), 80 / 255), atol=1e-6)
    assert wds_captions(b'["x", " y "]', "json") == ["x", "y"]


def test_wds_bad_input(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="matches no shard"):
        read_wds_groups(str(tmp_path / "*.tar"))
    with pytest.raises(DataError, match="not found"):
        read_wds_groups(str(tmp_path / "none-{0..1}.tar"))
    _shard(tmp_path / "a.tar", [{"__key__": "k0", "png": _png_bytes(0)}])
    with pytest.raises(DataError, match=r"a.tar: sample 'k0': no caption"):
        read_wds_groups(str(tmp_path / "a.tar"))
    _shard(tmp_path / "b.tar", [{"__key__": "k0", "png": _png_bytes(0), "json": b"{}"}])
    with pytest.raises(DataError, match=r"b.tar: sample 'k0': bad .json caption"):
        read_wds_groups(str(tmp_path / "b.tar"))
    _shard(tmp_path / "c.tar", [{"__key__": "k0", "png": b"not a png", "txt": b"x"}])
    ds = CaptionedImages(read_wds_groups(str(tmp_path / "c.tar")), T)
    with pytest.raises(DataError, match=r"c.tar: sample 'k0': cannot read the image"):
        ds[0]
    (tmp_path / "d.tar").write_bytes(b"this is not a tar file" * 40)
    with pytest.raises(DataError, match="d.tar"):
        read_wds_groups(str(tmp_path / "d.tar"))
