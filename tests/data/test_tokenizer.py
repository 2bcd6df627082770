"""Byte-level BPE tokenizer: round trip, truncation, padding, persistence, errors, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clipspace.data.captions import vocabulary
from clipspace.data.tokenizer import (
    Tokenizer,
    end_positions,
    get_tokenizer,
    train_tokenizer,
)
from clipspace.errors import DataError
from tests.helpers.mad import mad_corpus


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return train_tokenizer(mad_corpus(), vocab_size=1000, context_length=16)


def test_special_ids(tok: Tokenizer) -> None:
    assert tok.pad_id == 0
    assert len({tok.pad_id, tok.sot_id, tok.eot_id}) == 3
    assert tok.context_length == 16 and tok.vocab_size > 256


def test_round_trip_mad_captions(tok: Tokenizer) -> None:
    for text in mad_corpus(50):
        ids = tok.encode(text)
        assert ids[0] == tok.sot_id and ids[-1] == tok.eot_id
        assert tok.decode(ids) == text
        assert len(ids) <= 13  # 6 words + 5 dashes + SOT + EOT: each MAD word is one token
    for w in vocabulary():
        assert len(tok.encode(w)) == 3, w


BYTES_ONLY = train_tokenizer(["a-b c"], context_length=64)  # tiny vocab: bytes only


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=12))
def test_round_trip_arbitrary_text(text: str) -> None:
    assert BYTES_ONLY.decode(BYTES_ONLY.encode(text)) == text


def test_round_trip_fixed_text(tok: Tokenizer) -> None:
    tok = Tokenizer(tok.backend, context_length=64)  # long enough: nothing is truncated
    for text in ["héllo wörld 😀", "  two  spaces\tand\nnewline ", "CAPS-and-MAD-3-red", ""]:
        assert tok.decode(tok.encode(text)) == text


def test_batch_padding_and_truncation(tok: Tokenizer) -> None:
    long = "-".join(["thickening"] * 40)
    out = tok(["3-red", long, ""])
    assert out.dtype == torch.long and out.shape == (3, 16)
    short = tok.encode("3-red")
    assert out[0, : len(short)].tolist() == short
    assert (out[0, len(short) :] == 0).all()
    assert out[1, -1].item() == tok.eot_id  # truncated: EOT kept as the last token
    assert (out[1] != 0).all() and out[1, 0].item() == tok.sot_id
    assert out[2, :2].tolist() == [tok.sot_id, tok.eot_id]
    assert end_positions(out, tok.eot_id).tolist() == [len(short) - 1, 15, 1]
    assert tok("3-red").shape == (1, 16)
    # the decoded truncation is a prefix of the original text
    assert long.startswith(tok.decode(out[1]))


def test_end_positions_without_eot() -> None:
    toks = torch.tensor([[1, 5, 7, 2, 0], [1, 5, 5, 5, 5]])
    assert end_positions(toks, 2).tolist() == [3, 4]


def test_save_load(tok: Tokenizer, tmp_path: Path) -> None:
    path = tok.save(tmp_path / "tokenizer.json")
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temp file left
    for src in (path, tmp_path):
        again = get_tokenizer(src)
        assert again.context_length == 16 and again.vocab_size == tok.vocab_size
        texts = mad_corpus(20) + ["héllo"]
        assert torch.equal(again(texts), tok(texts))
    assert get_tokenizer(path, context_length=8)("3-red-small").shape == (1, 8)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        get_tokenizer(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(DataError, match="bad.json"):
        get_tokenizer(bad)
    bad.write_text('{"model": 3}')
    with pytest.raises(DataError, match="bad.json"):
        get_tokenizer(bad)
