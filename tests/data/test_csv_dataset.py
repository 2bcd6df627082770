"""CsvDataset on files the test writes: separators, column names, bad rows, bad images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from clipspace.data.bad_images import end_epoch_report
from clipspace.data.csv_dataset import CsvDataset
from clipspace.data.transforms import image_transform
from clipspace.errors import DataError

T = image_transform(16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _image(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((20, 24, 3), value, np.uint8)).save(path)


def _write(path: Path, header: list[str], rows: list[list[str]], sep: str) -> Path:
    lines = [sep.join(header)] + [sep.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_tsv_default_layout(tmp_path: Path) -> None:
    for i in range(3):
        _image(tmp_path / "img" / f"{i}.png", 40 * i)
    rows = [[f"img/{i}.png", f"caption {i}"] for i in range(3)]
    csv = _write(tmp_path / "train.tsv", ["filepath", "title"], rows, "\t")
    ds = CsvDataset(csv, transform=T)
    assert len(ds) == 3
    item = ds[2]
    assert item["text"] == "caption 2" and item["index"] == 2
    assert item["image"].shape == (3, 16, 16)
    assert torch.allclose(item["image"], torch.full((3, 16, 16), 80 / 255), atol=1e-6)


def test_comma_custom_columns_and_image_root(tmp_path: Path) -> None:
    root = tmp_path / "pictures"
    _image(root / "a.jpg", 10)
    _image(root / "b.jpg", 200)
    csv = tmp_path / "meta" / "pairs.csv"
    csv.parent.mkdir()
    csv.write_text('id,path,caption\n0,a.jpg,"a dog, running"\n1,b.jpg,a cat\n')
    ds = CsvDataset(
        csv, img_key="path", caption_key="caption", sep=",", image_root=root, transform=T
    )
    assert [ds[i]["text"] for i in range(2)] == ["a dog, running", "a cat"]
    assert ds[1]["image"].mean() > 0.7  # the bright image, loaded from image_root


def test_missing_column_names_columns_found(tmp_path: Path) -> None:
    csv = _write(tmp_path / "x.tsv", ["file", "caption"], [["a.png", "hi"]], "\t")
    with pytest.raises(DataError) as err:
        CsvDataset(csv, transform=T)
    msg = str(err.value)
    assert str(csv) in msg and "filepath" in msg and "'file'" in msg and "'caption'" in msg


def test_wrong_separator_reports_columns(tmp_path: Path) -> None:
    csv = _write(tmp_path / "x.csv", ["filepath", "title"], [["a.png", "hi"]], ",")
    with pytest.raises(DataError, match="filepath,title"):
        CsvDataset(csv, transform=T)  # default sep is a tab: one column 'filepath,title'


@pytest.mark.parametrize(
    ("bad_row", "what"),
    [("a.png\tx\textra", "found 3"), ("only_one_field", "found 1"), ("a.png\t ", "caption")],
)
def test_malformed_row_names_file_and_line(tmp_path: Path, bad_row: str, what: str) -> None:
    csv = tmp_path / "bad.tsv"
    csv.write_text(f"filepath\ttitle\nok.png\tfine\nok.png\tfine\n{bad_row}\nok.png\tfine\n")
    with pytest.raises(DataError) as err:
        CsvDataset(csv, transform=T)
    msg = str(err.value)
    assert f"{csv}, line 4" in msg and what in msg


def test_empty_file_and_no_rows(tmp_path: Path) -> None:
    empty = tmp_path / "e.tsv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        CsvDataset(empty, transform=T)
    header_only = _write(tmp_path / "h.tsv", ["filepath", "title"], [], "\t")
    with pytest.raises(DataError, match="no rows"):
        CsvDataset(header_only, transform=T)
    with pytest.raises(DataError, match="not found"):
        CsvDataset(tmp_path / "nope.tsv", transform=T)


def _mixed(tmp_path: Path, n_good: int) -> Path:
    rows = []
    for i in range(n_good):
        _image(tmp_path / f"g{i}.png", 100)
        rows.append([f"g{i}.png", f"good {i}"])
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    rows.insert(1, ["corrupt.jpg", "corrupt"])
    rows.insert(3, ["gone.jpg", "missing"])
    return _write(tmp_path / "mixed.tsv", ["filepath", "title"], rows, "\t")


def test_corrupt_and_missing_images_skipped_and_counted(tmp_path: Path) -> None:
    ds = CsvDataset(_mixed(tmp_path, 198), transform=T, max_bad_fraction=0.02)
    assert len(ds) == 200
    item = ds[1]  # corrupt -> next row
    assert item["text"] == "good 1" and item["index"] == 2
    item = ds[3]  # missing -> next row
    assert item["text"] == "good 2" and item["index"] == 4
    assert (ds.bad_images.seen, ds.bad_images.bad) == (2, 2)  # only the rows asked for count
    ds.bad_images.reset()
    texts = [ds[i]["text"] for i in range(len(ds))]  # a whole epoch: 2 bad of 200 rows
    assert "corrupt" not in texts and "missing" not in texts and texts.count("good 1") == 2
    buf = io.StringIO()
    summary = end_epoch_report(ds, file=buf)
    assert summary is not None and summary.bad == 2
    assert "corrupt.jpg" in buf.getvalue() and "gone.jpg (missing)" in buf.getvalue()


def test_over_threshold_raises(tmp_path: Path) -> None:
    ds = CsvDataset(_mixed(tmp_path, 8), transform=T, max_bad_fraction=0.1)
    texts = [ds[i]["text"] for i in range(2)]  # 1 bad of 10 rows: allowed
    assert texts == ["good 0", "good 1"]
    with pytest.raises(DataError, match="gone.jpg"):
        ds[3]  # 2 bad > 0.1 * 10


def test_dataloader_workers_count_in_main_process(tmp_path: Path) -> None:
    ds = CsvDataset(_mixed(tmp_path, 8), transform=T, max_bad_fraction=0.5)
    loader = DataLoader(ds, batch_size=5, num_workers=2)
    texts = [t for batch in loader for t in batch["text"]]
    assert len(texts) == 10 and "corrupt" not in texts and "missing" not in texts
    assert ds.bad_images.bad == 2  # counted in the workers, visible here
    assert ds.bad_images.seen == 10  # each row once
