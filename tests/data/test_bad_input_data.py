"""Bad data input is answered: non-UTF-8 CSV / HierarCaps files name the file and line, a missing
``webdataset`` package says how to install it, a missing MAD directory is reported as such, a FIFO
named as an image is skipped (not opened), and adjacent bad rows are counted once each."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipspace.cli import main
from clipspace.config import DataConfig
from clipspace.data.bad_images import end_epoch_report
from clipspace.data.build import build_dataset, resolve_tokenizer
from clipspace.data.csv_dataset import CsvDataset, read_csv_pairs
from clipspace.data.hierarcaps import read_hierarcaps_test, read_hierarcaps_train
from clipspace.data.transforms import image_transform
from clipspace.errors import DataError

T = image_transform(8, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))

ENCODINGS = [
    # (file bytes, line of the first bad byte, that byte)
    ("filepath\ttitle\na.png\tcaf\xe9\n".encode("latin-1"), 2, "0xe9"),
    ("filepath\ttitle\na.png\tcafe\n".encode("utf-16"), 1, "0xff"),
    (b"filepath\ttitle\na.png\tx\nb.png\t\x89PNG\x00\xff\n", 3, "0x89"),
]


@pytest.mark.parametrize("data,line,byte", ENCODINGS)
def test_csv_not_utf8_names_file_and_line(tmp_path: Path, data: bytes, line: int,
                                          byte: str) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_bytes(data)
    for read in (read_csv_pairs, CsvDataset):
        with pytest.raises(DataError) as err:
            read(path)
        msg = str(err.value)
        assert str(path) in msg and f"line {line}" in msg and byte in msg and "UTF-8" in msg


def test_hierarcaps_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    test_csv = tmp_path / "test.csv"
    test_csv.write_bytes(b'id,captions,image_url\n0,"a => b => c => d",x.jpg\n'
                         b'1,"a => b => caf\xe9 => d",y.jpg\n')
    with pytest.raises(DataError, match=r"test\.csv, line 3: not UTF-8 text \(byte 0xe9\)"):
        read_hierarcaps_test(test_csv)
    train_csv = tmp_path / "train.csv"
    train_csv.write_bytes("positive,negative\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"train\.csv, line 1: not UTF-8"):
        read_hierarcaps_train(train_csv)


def test_cli_non_utf8_csv_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_bytes(ENCODINGS[0][0])
    code = main(["tokenizer", "train", "--input", str(path), "--column", "title", "--out",
                 str(tmp_path / "tok.json")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{path}, line 2: not UTF-8 text (byte 0xe9)" in err


@pytest.fixture()
def no_webdataset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import webdataset`` (and ``clipspace.data.wds``) fail as when it is not installed."""
    for name in [m for m in sys.modules if m == "webdataset" or m.startswith("webdataset.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "webdataset", None)
    monkeypatch.delitem(sys.modules, "clipspace.data.wds", raising=False)


def test_wds_without_webdataset_says_how_to_install(no_webdataset: None, tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        build_dataset(f"wds:{tmp_path}/{{000..001}}.tar", DataConfig())
    msg = str(err.value)
    assert "webdataset" in msg and "pip install 'clipspace[wds]'" in msg and "data.train" in msg


def test_wds_eval_groups_without_webdataset(no_webdataset: None, tmp_path: Path) -> None:
    from clipspace.data.captioned_images import read_wds_groups

    with pytest.raises(DataError, match=r"pip install 'clipspace\[wds\]'"):
        read_wds_groups(f"{tmp_path}/000.tar")


def test_missing_mad_directory_reported_before_tokenizer(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    with pytest.raises(DataError) as err:
        resolve_tokenizer(DataConfig(train=f"mad:{missing}"))
    msg = str(err.value)
    assert str(missing) in msg and "MAD directory" in msg and "not found" in msg
    assert "tokenizer" not in msg


def test_cli_missing_mad_directory(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nonexistent"
    code = main(["train", "--data", f"mad:{missing}", "--output-dir", str(tmp_path / "runs")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{missing}: MAD directory not found" in err and "tokenizer" not in err


def _png(path: Path, value: int) -> None:
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


def _csv_with_images(tmp_path: Path, bad: set[int], n: int = 10) -> Path:
    rows = ["filepath\ttitle"]
    for i in range(n):
        name = tmp_path / f"{i}.png"
        if i in bad:
            name.write_bytes(b"not an image")
        else:
            _png(name, 20 * i)
        rows.append(f"{name.name}\tcaption {i}")
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("bad", [{3, 4, 5}, {1, 5, 8}], ids=["adjacent", "spread"])
def test_bad_rows_counted_once(tmp_path: Path, bad: set[int]) -> None:
    ds = CsvDataset(_csv_with_images(tmp_path, bad), transform=T, max_bad_fraction=0.3)
    items = [ds[i] for i in range(len(ds))]  # one epoch, every row asked for once
    assert all(it["index"] not in bad for it in items)
    assert (ds.bad_images.seen, ds.bad_images.bad) == (10, 3)
    assert end_epoch_report(ds) is not None  # 3 of 10 is within the limit: no error


def test_fifo_is_skipped_not_opened(tmp_path: Path) -> None:
    path = _csv_with_images(tmp_path, bad=set(), n=3)
    fifo = tmp_path / "1.png"
    fifo.unlink()
    os.mkfifo(fifo)
    ds = CsvDataset(path, transform=T, max_bad_fraction=0.5)
    box: dict[str, object] = {}
    reader = threading.Thread(target=lambda: box.update(item=ds[1]), daemon=True)
    reader.start()
    reader.join(timeout=20)
    if reader.is_alive():  # stuck in open(): give it a writer so the thread can end
        with open(fifo, "wb"):
            pass
        reader.join(timeout=20)
        pytest.fail("reading a FIFO named as an image blocked")
    assert box["item"]["index"] == 2  # type: ignore[index]
    assert ds.bad_images.bad == 1
    assert "not a regular file" in ds.bad_images.summary().examples[0]
