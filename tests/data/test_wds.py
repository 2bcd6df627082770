"""WebDataset shards written by the test, read back: captions, json, splitting, epochs, bad data."""

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
from torch.utils.data import DataLoader

from clipspace.data.transforms import image_transform
from clipspace.data.wds import WdsDataset, wds_dataset
from clipspace.errors import DataError

T = image_transform(8, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((10, 12, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _shards(tmp_path: Path, n_shards: int = 4, per_shard: int = 5, json_every: int = 0) -> str:
    """Shards shard-000.tar ...; sample k has caption 'caption k' and pixel value k."""
    k = 0
    for s in range(n_shards):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            writer = webdataset.TarWriter(str(tmp_path / f"shard-{s:03d}.tar"))
        with writer:
            for _ in range(per_shard):
                sample = {"__key__": f"s{k:05d}", "png": _png(k)}
                if json_every and k % json_every == 0:
                    sample["json"] = json.dumps({"caption": f"caption {k}", "w": 1}).encode()
                else:
                    sample["txt"] = f"caption {k}".encode()
                writer.write(sample)
                k += 1
    return str(tmp_path / f"shard-{{000..{n_shards - 1:03d}}}.tar")


def _texts(ds: WdsDataset) -> list[str]:
    return [item["text"] for item in ds]


def test_read_back_captions_and_pixels(tmp_path: Path) -> None:
    ds = wds_dataset(_shards(tmp_path), T, shuffle_buffer=0)
    items = list(ds)
    assert [it["text"] for it in items] == [f"caption {k}" for k in range(20)]
    for k, it in enumerate(items):
        assert it["image"].shape == (3, 8, 8)
        assert torch.allclose(it["image"], torch.full((3, 8, 8), k / 255), atol=1e-6)
        assert it["key"] == f"s{k:05d}"
    assert sorted(it["index"] for it in items) == list(range(20))


def test_json_captions_and_glob(tmp_path: Path) -> None:
    _shards(tmp_path, n_shards=2, per_shard=4, json_every=2)
    ds = wds_dataset(str(tmp_path / "*.tar"), T, shuffle_buffer=0)
    assert _texts(ds) == [f"caption {k}" for k in range(8)]


def test_shuffle_is_seeded_and_complete(tmp_path: Path) -> None:
    pattern = _shards(tmp_path)
    a = _texts(wds_dataset(pattern, T, shuffle_buffer=8, seed=3))
    b = _texts(wds_dataset(pattern, T, shuffle_buffer=8, seed=3))
    ds = wds_dataset(pattern, T, shuffle_buffer=8, seed=3)
    ds.set_epoch(1)
    c = _texts(ds)
    assert a == b and a != c
    assert sorted(a) == sorted(c) == sorted(f"caption {k}" for k in range(20))
    assert a != [f"caption {k}" for k in range(20)]


def test_two_ranks_see_disjoint_samples(tmp_path: Path) -> None:
    pattern = _shards(tmp_path)
    r0 = _texts(wds_dataset(pattern, T, rank=0, world_size=2, seed=1))
    r1 = _texts(wds_dataset(pattern, T, rank=1, world_size=2, seed=1))
    assert len(r0) == len(r1) == 10
    assert not set(r0) & set(r1)
    assert set(r0) | set(r1) == {f"caption {k}" for k in range(20)}


def test_dataloader_workers_split_shards(tmp_path: Path) -> None:
    ds = wds_dataset(_shards(tmp_path), T, shuffle_buffer=0, rank=1, world_size=2)
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    items = list(loader)
    texts = [it["text"] for it in items]
    assert len(texts) == len(set(texts)) == 10  # this rank's 2 shards, each read once
    indices = [it["index"] for it in items]
    assert len(set(indices)) == 10  # unique per epoch across workers


def test_epoch_samples_and_resampling(tmp_path: Path) -> None:
    pattern = _shards(tmp_path)
    short = _texts(wds_dataset(pattern, T, epoch_samples=7, shuffle_buffer=0))
    assert short == [f"caption {k}" for k in range(7)]
    ds = wds_dataset(pattern, T, resampled=True, epoch_samples=50, seed=0, shuffle_buffer=4)
    many = _texts(ds)
    assert len(many) == 50  # more than one pass over the 20 samples
    assert len(set(many)) > 5
    assert many == _texts(wds_dataset(pattern, T, resampled=True, epoch_samples=50, seed=0,
                                      shuffle_buffer=4))
    two = _texts(wds_dataset(pattern, T, resampled=True, epoch_samples=50, rank=0, world_size=2))
    assert len(two) == 25  # epoch_samples counts all ranks
    with pytest.raises(DataError, match="epoch_samples"):
        wds_dataset(pattern, T, resampled=True)


def test_bad_samples_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "bad-000.tar"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        writer = webdataset.TarWriter(str(path))
    with writer:
        writer.write({"__key__": "ok1", "png": _png(5), "txt": b"fine one"})
        writer.write({"__key__": "broken", "jpg": b"\xff\xd8 not a jpeg", "txt": b"broken"})
        writer.write({"__key__": "noimg", "txt": b"no image"})
        writer.write({"__key__": "badjson", "png": _png(6), "json": b'{"other": 1}'})
        writer.write({"__key__": "ok2", "png": _png(7), "txt": b"fine two"})
    ds = wds_dataset(str(path), T, shuffle_buffer=0, max_bad_fraction=1.0)
    assert _texts(ds) == ["fine one", "fine two"]
    assert (ds.bad_images.seen, ds.bad_images.bad) == (5, 3)
    examples = " ".join(ds.bad_images.summary().examples)
    assert "broken" in examples and "noimg" in examples and "badjson" in examples
    strict = wds_dataset(str(path), T, shuffle_buffer=0, max_bad_fraction=0.1)
    _texts(strict)
    with pytest.raises(DataError, match="broken"):
        strict.bad_images.end_epoch(file=io.StringIO())


def test_missing_shards_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="matches no shard"):
        wds_dataset(str(tmp_path / "*.tar"), T)
    with pytest.raises(DataError, match="not found"):
        wds_dataset(str(tmp_path / "x-{000..001}.tar"), T)


def test_unreadable_shard_is_counted(tmp_path: Path) -> None:
    _shards(tmp_path, n_shards=1, per_shard=3)
    (tmp_path / "shard-001.tar").write_bytes(b"garbage" * 100)
    ds = wds_dataset(str(tmp_path / "shard-{000..001}.tar"), T, shuffle_buffer=0,
                     max_bad_fraction=1.0)
    assert _texts(ds) == ["caption 0", "caption 1", "caption 2"]
    assert ds.bad_images.bad == 1
    assert "shard-001.tar" in ds.bad_images.summary().examples[0]
