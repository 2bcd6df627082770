"""build_dataset / build_loader: spec parsing, collation, rank sharding, exact resume."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from clipspace.config import ConfigError, DataConfig
from clipspace.data import mad_schema as S
from clipspace.data.build import (
    ShardedBatchSampler,
    build_dataset,
    build_loader,
    parse_spec,
    resolve_tokenizer,
    set_loader_epoch,
)
from clipspace.data.collate import Collate
from clipspace.data.mad import MADDataset
from clipspace.data.tokenizer import train_tokenizer
from tests.helpers.mad import write_mad


@pytest.fixture(scope="module")
def mad_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mad(tmp_path_factory.mktemp("build") / "mad", n_digits=5, test_digits=1)


@pytest.fixture(scope="module")
def tok():
    from clipspace.data.captions import vocabulary

    return train_tokenizer(vocabulary() * 3, context_length=16)


def test_parse_spec_errors() -> None:
    assert parse_spec("mad:data/x:y") == ("mad", "data/x:y")
    for bad in ("data/mad", "parquet:x", "mad:", ""):
        with pytest.raises(ConfigError, match=r"data\.train.*mad.*csv.*wds.*hierarcaps"):
            build_dataset(bad, DataConfig())
    with pytest.raises(ConfigError, match=r"data\.val"):
        build_dataset("zip:x", DataConfig(), split="val")


def test_build_mad(mad_dir: Path) -> None:
    cfg = DataConfig(num_attrs=1, main_object="scale", max_samples=30)
    ds = build_dataset(f"mad:{mad_dir}", cfg)
    assert isinstance(ds, MADDataset) and len(ds) == 30
    assert ds.num_attrs == 1 and ds.main_object == "scale"
    assert len(build_dataset(f"mad:{mad_dir}", DataConfig(), split="val")) == 24
    big = build_dataset(f"mad:{mad_dir}", DataConfig(), image_size=32)
    if big.transform is not None:  # needs transforms.py (another module)
        assert big[0]["image"].shape == (3, 32, 32)


def test_collate(mad_dir: Path, tok) -> None:
    ds = MADDataset(mad_dir)
    coll = pickle.loads(pickle.dumps(Collate(tok)))  # workers need it picklable
    batch = coll([ds[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 28, 28)
    assert batch["text"].shape == (4, 16) and batch["text"].dtype == torch.long
    assert batch["caption"] == [ds[i]["text"] for i in range(4)]
    for k in ("index", *S.LABEL_KEYS):
        assert batch[k].dtype == torch.long
        assert batch[k].tolist() == [ds[i][k] for i in range(4)]
    assert [tok.decode(r) for r in batch["text"]] == batch["caption"]


def test_sampler_rank_shards_are_disjoint() -> None:
    for n, drop in ((103, True), (103, False), (96, True)):
        shards = [ShardedBatchSampler(n, 8, rank=r, world_size=2, seed=1, drop_last=drop)
                  for r in range(2)]
        seen = [[i for b in s for i in b] for s in shards]
        assert len(shards[0]) == len(shards[1])
        if drop:
            assert set(seen[0]).isdisjoint(seen[1])
            assert len(seen[0]) == len(seen[1]) == (n // 2) // 8 * 8
        else:
            assert set(seen[0]) | set(seen[1]) == set(range(n))
        full = ShardedBatchSampler(n, 8, rank=0, world_size=2, seed=1, drop_last=drop)
        assert [len(b) for b in full][:-1] == [8] * (len(full) - 1)


def test_sampler_epochs_and_seed() -> None:
    s = ShardedBatchSampler(50, 5, seed=0)
    e0 = list(s)
    assert sorted(i for b in e0 for i in b) == list(range(50))
    assert list(s) == e0
    s.set_epoch(1)
    assert list(s) != e0
    assert list(ShardedBatchSampler(50, 5, seed=1)) != e0
    assert [i for b in ShardedBatchSampler(50, 5, shuffle=False) for i in b] == list(range(50))


def test_loader_sharding_two_ranks(mad_dir: Path, tok) -> None:
    cfg = DataConfig(batch_size=8)
    idx = []
    for rank in range(2):
        loader = build_loader(f"mad:{mad_dir}", cfg, tok, rank=rank, world_size=2, seed=3)
        idx.append([i for b in loader for i in b["index"].tolist()])
    assert len(idx[0]) == len(idx[1]) == 48
    assert set(idx[0]).isdisjoint(idx[1])
    train = MADDataset(mad_dir)
    assert set(idx[0]) | set(idx[1]) == set(train.indices.tolist())  # 96 = 2 * 48: all seen


def test_loader_resume_is_exact(mad_dir: Path, tok) -> None:
    cfg = DataConfig(batch_size=8, redraw_per_epoch=True, num_attrs=2)
    spec = f"mad:{mad_dir}"
    loader = build_loader(spec, cfg, tok, seed=7)
    set_loader_epoch(loader, 2)
    full = list(loader)
    assert len(full) == 12
    resumed = build_loader(spec, cfg, tok, seed=7)
    set_loader_epoch(resumed, 2, start_index=5)
    assert len(resumed) == 7
    rest = list(resumed)
    assert len(rest) == 7
    for a, b in zip(full[5:], rest, strict=True):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["image"], b["image"])
        assert a["caption"] == b["caption"] and torch.equal(a["text"], b["text"])
    # the epoch matters: captions were redrawn, order reshuffled
    set_loader_epoch(resumed, 3)
    other = list(resumed)
    assert [b["index"].tolist() for b in other] != [b["index"].tolist() for b in full]
    state = resumed.batch_sampler.state_dict()
    fresh = build_loader(spec, cfg, tok, seed=7)
    fresh.batch_sampler.load_state_dict({**state, "epoch": 2, "start_index": 11})
    assert torch.equal(next(iter(fresh))["index"], full[11]["index"])


def test_loader_with_workers(mad_dir: Path, tok) -> None:
    cfg = DataConfig(batch_size=16, workers=1)
    loader = build_loader(f"mad:{mad_dir}", cfg, tok, shuffle=False, drop_last=False)
    batches = list(loader)
    assert sum(len(b["caption"]) for b in batches) == 96
    assert batches[0]["index"].tolist() == MADDataset(mad_dir).indices[:16].tolist()


def test_build_csv_dispatch(tmp_path: Path, tok) -> None:
    pytest.importorskip("clipspace.data.csv_dataset")
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (40, 30), (i * 60, 10, 200)).save(tmp_path / f"im{i}.png")
    table = tmp_path / "pairs.tsv"
    table.write_text("filepath\ttitle\n" + "".join(f"im{i}.png\tcap {i}\n" for i in range(3)))
    cfg = DataConfig(image_root=str(tmp_path), batch_size=3)
    ds = build_dataset(f"csv:{table}", cfg, split="val", image_size=24)
    assert len(ds) == 3 and ds[1]["text"] == "cap 1"
    assert ds[1]["image"].shape == (3, 24, 24)
    batch = next(iter(build_loader(ds, cfg, tok, shuffle=False)))
    assert batch["caption"] == ["cap 0", "cap 1", "cap 2"] and batch["text"].shape == (3, 16)


def test_resolve_tokenizer(mad_dir: Path, tok, tmp_path: Path) -> None:
    from clipspace.errors import DataError

    with pytest.raises(DataError, match="tokenizer.json"):
        resolve_tokenizer(DataConfig(train=f"mad:{mad_dir}"))  # fixture has no tokenizer
    saved = tok.save(tmp_path / "tokenizer.json")
    got = resolve_tokenizer(DataConfig(train="csv:x.tsv", tokenizer=str(saved)), 8)
    assert got.context_length == 8 and got.vocab_size == tok.vocab_size
    with pytest.raises(ConfigError, match="data.tokenizer"):
        resolve_tokenizer(DataConfig(train="csv:x.tsv"))
