"""Hierarchical MAD chains: entailment along levels, sibling negatives."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clipspace.data import mad_schema as S
from clipspace.data.captions import parse_caption
from clipspace.data.chains import Chain, chains_from_labels, entails, mad_chains
from clipspace.data.mad import MADDataset
from tests.helpers.mad import random_labels, write_mad


def test_entails() -> None:
    assert entails("3", "3-red") and entails("3-red", "small-3-red")
    assert entails("3-red", "3-red")
    assert not entails("3-red", "3") and not entails("3-blue", "3-red-small")
    assert entails("", "7")


def check_chain(chain: Chain, labels: dict[str, int]) -> None:
    pos, neg = chain.positive, chain.negative
    assert len(pos) == len(neg) == 4
    assert pos[0] == S.DIGIT_WORDS[labels["digit"]]
    for k in range(4):
        p = parse_caption(pos[k])
        assert len(p) == k + 1
        assert all(labels[key] == v for key, v in p.items())  # describes the image
        if k < 3:
            assert entails(pos[k], pos[k + 1]) and not entails(pos[k + 1], pos[k])
            assert pos[k + 1].startswith(pos[k] + "-")  # canonical order: prefix
        n = parse_caption(neg[k])
        assert not entails(neg[k], pos[k]) and not entails(pos[k], neg[k])
        # sibling: same parent (positive at level k-1), same slots, one value differs
        parent = parse_caption(pos[k - 1]) if k else {}
        assert set(n) == set(p)
        diff = [key for key in p if p[key] != n[key]]
        assert len(diff) == 1 and diff[0] not in parent
        assert all(n[key] == v for key, v in parent.items())
        if k:
            assert entails(pos[k - 1], neg[k])


def test_chains_from_labels() -> None:
    labels = random_labels(300, seed=4)
    chains = chains_from_labels(labels, seed=0)
    assert [c.index for c in chains] == list(range(300))
    for i, c in enumerate(chains):
        check_chain(c, {k: int(labels[k][i]) for k in S.LABEL_KEYS})
    # the attribute order varies across images, deterministic for the seed
    second = {next(k for k in parse_caption(c.positive[1]) if k != "digit") for c in chains}
    assert second == set(S.ATTRIBUTE_SLOTS)
    again = chains_from_labels(labels, seed=0)
    assert [c.positive + c.negative for c in again] == [c.positive + c.negative for c in chains]
    other = chains_from_labels(labels, seed=1)
    assert [c.positive for c in other] != [c.positive for c in chains]


def test_mad_chains(tmp_path: Path) -> None:
    root = write_mad(tmp_path / "mad")
    ds = MADDataset(root, split="test")
    chains = mad_chains(root, split="test", seed=0)
    assert len(chains) == len(ds)
    for c in chains:
        item = ds[c.index]
        check_chain(c, {k: item[k] for k in S.LABEL_KEYS})
    same = mad_chains(ds, seed=0)
    assert [c.positive for c in same] == [c.positive for c in chains]
    assert np.all([len(c.negative) == 4 for c in same])
