"""data.caption_fraction / data.caption_unit: a random fraction of each caption's words or
sentences, at least one unit, order kept, drawn again each epoch from the seed; MAD refuses it."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import Dataset, IterableDataset

from clipspace.config import ConfigError, DataConfig, resolve, validate
from clipspace.data.build import build_loader
from clipspace.data.caption_fraction import (
    CaptionFraction,
    IterableCaptionFraction,
    keep_fraction,
    kept_count,
    split_units,
    with_caption_fraction,
)

WORDS = "a b c d e f g h"
SENTENCES = "One is here. Two is there! Three? Four ends it."


class Captions(Dataset):
    """Map-style items with the reader's keys (image, text, texts, index)."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.epochs: list[int] = []

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": torch.zeros(3, 2, 2), "text": self.texts[i],
                "texts": [self.texts[i], self.texts[i]], "index": i}

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


class Stream(IterableDataset):
    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def __iter__(self):
        for i, t in enumerate(self.texts):
            yield {"image": torch.zeros(3, 2, 2), "text": t, "index": i}


def is_ordered_subsequence(part: list[str], whole: list[str]) -> bool:
    it = iter(whole)
    return all(any(p == w for w in it) for p in part)


def test_units_split_words_and_sentences() -> None:
    assert split_units(WORDS, "word") == list("abcdefgh")
    assert split_units(SENTENCES, "sentence") == ["One is here.", "Two is there!", "Three?",
                                                  "Four ends it."]
    assert split_units("no end mark", "sentence") == ["no end mark"]
    with pytest.raises(ValueError, match="token"):
        split_units(WORDS, "token")


@pytest.mark.parametrize(("n", "fraction", "k"), [
    (8, 0.5, 4), (8, 0.25, 2), (8, 1.0, 8), (8, 0.01, 1), (3, 0.5, 2), (1, 0.1, 1), (0, 0.5, 0)])
def test_kept_count_rounds_and_keeps_one(n: int, fraction: float, k: int) -> None:
    assert kept_count(n, fraction) == k


@pytest.mark.parametrize(("caption", "unit", "fraction", "k"), [
    (WORDS, "word", 0.5, 4), (WORDS, "word", 0.25, 2), (SENTENCES, "sentence", 0.5, 2),
    (SENTENCES, "sentence", 0.25, 1), ("single", "word", 0.1, 1)])
def test_keep_fraction_keeps_k_units_in_order(caption: str, unit: str, fraction: float,
                                              k: int) -> None:
    for seed in range(20):
        out = keep_fraction(caption, fraction, unit, random.Random(seed))
        units = split_units(out, unit)
        assert len(units) == k
        assert is_ordered_subsequence(units, split_units(caption, unit))


@pytest.mark.parametrize(("fraction", "k"), [(0.5, 4), (0.25, 2), (0.125, 1)])
def test_contiguous_span_keeps_one_run_at_every_start(fraction: float, k: int) -> None:
    starts = set()
    for seed in range(200):
        out = keep_fraction(WORDS, fraction, "word", random.Random(seed), span="contiguous")
        assert out in {WORDS[2 * i:2 * (i + k) - 1] for i in range(9 - k)}, out  # "c d", ...
        starts.add(out.split()[0])
    assert starts == set("abcdefgh"[:9 - k])
    ds = CaptionFraction(Captions([WORDS]), 0.5, "word", 0, span="contiguous")
    assert ds[0]["text"] in WORDS


def test_every_unit_is_drawn_sometimes() -> None:
    seen = {w for seed in range(200) for w in keep_fraction(WORDS, 0.25, "word",
                                                            random.Random(seed)).split()}
    assert seen == set("abcdefgh")


def test_full_fraction_is_the_identity() -> None:
    ds = Captions([WORDS])
    assert with_caption_fraction(ds, DataConfig(caption_fraction=1.0)) is ds
    assert keep_fraction("  spaced   caption ", 1.0, "word", random.Random(0)) == \
        "  spaced   caption "


def test_draws_are_deterministic_per_seed_epoch_and_index() -> None:
    ds = CaptionFraction(Captions([WORDS] * 30), 0.5, "word", seed=3)
    first = [ds[i]["text"] for i in range(30)]
    assert first == [ds[i]["text"] for i in range(30)]  # same epoch: same captions
    assert first == [CaptionFraction(Captions([WORDS] * 30), 0.5, "word", 3)[i]["text"]
                     for i in range(30)]
    assert len(set(first)) > 5  # items differ from each other
    ds.set_epoch(1)
    second = [ds[i]["text"] for i in range(30)]
    assert second != first  # drawn again each epoch
    other_seed = CaptionFraction(Captions([WORDS] * 30), 0.5, "word", seed=4)
    assert [other_seed[i]["text"] for i in range(30)] != first
    assert ds.dataset.epochs == [1]  # the wrapped dataset hears the epoch too


def test_texts_are_cut_too_and_other_keys_kept() -> None:
    item = CaptionFraction(Captions([WORDS]), 0.25, "word", 0)[0]
    assert len(item["text"].split()) == 2
    assert [len(t.split()) for t in item["texts"]] == [2, 2]
    assert item["index"] == 0 and item["image"].shape == (3, 2, 2)


def test_iterable_datasets_are_wrapped_iterably() -> None:
    ds = with_caption_fraction(Stream([WORDS] * 4), DataConfig(caption_fraction=0.5,
                                                                caption_unit="word"))
    assert isinstance(ds, IterableCaptionFraction)
    items = list(ds)
    assert [len(it["text"].split()) for it in items] == [4] * 4
    assert [it["text"] for it in items] == [it["text"] for it in ds]


def test_bad_fraction_or_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="fraction"):
        CaptionFraction(Captions([WORDS]), 0.0, "word", 0)
    with pytest.raises(ValueError, match="unit"):
        CaptionFraction(Captions([WORDS]), 0.5, "char", 0)
    with pytest.raises(ValueError, match="span"):
        CaptionFraction(Captions([WORDS]), 0.5, "word", 0, span="middle")


def test_training_loader_cuts_csv_captions(tmp_path: Path) -> None:
    from PIL import Image

    for i in range(4):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / f"{i}.png")
    rows = "".join(f"{i}.png\tw{i}a w{i}b w{i}c w{i}d\n" for i in range(4))
    (tmp_path / "d.csv").write_text("filepath\ttitle\n" + rows)
    cfg = DataConfig(train=f"csv:{tmp_path / 'd.csv'}", batch_size=4, caption_fraction=0.5,
                     image_root=str(tmp_path))
    train = build_loader(cfg.train, cfg, tokenizer=lambda c: torch.zeros(len(c), 4),
                         split="train", shuffle=False, image_size=8)
    val = build_loader(cfg.train, cfg, tokenizer=lambda c: torch.zeros(len(c), 4),
                       split="val", shuffle=False, image_size=8)
    cut = next(iter(train))["caption"]
    assert [len(c.split()) for c in cut] == [2] * 4
    assert all(w.startswith(f"w{i}") for i, c in enumerate(cut) for w in c.split())
    assert [len(c.split()) for c in next(iter(val))["caption"]] == [4] * 4  # val stays whole


def test_mad_training_data_is_a_config_error_naming_num_attrs() -> None:
    with pytest.raises(ConfigError, match="data.num_attrs") as err:
        validate(resolve("clip", {"data.train": "mad:data/mad", "data.caption_fraction": 0.5}))
    assert "data.caption_fraction" in str(err.value)
    validate(resolve("clip", {"data.train": "csv:x.csv", "data.caption_fraction": 0.5}))


def test_cli_mad_with_caption_fraction_exits_2(tiny_mad: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    from clipspace.cli import main

    code = main(["train", "--data", f"mad:{tiny_mad}", "--steps", "1", "--output-dir",
                 str(tmp_path), "--name", "x", "--set", "data.caption_fraction=0.5"])
    assert code == 2
    assert "data.num_attrs" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
