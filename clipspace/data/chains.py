"""Hierarchical caption chains with sibling negatives (docs/reference.md sections 3 and 5).

MAD chain of one image (4 levels, generic -> specific):
  p1 = digit word; p_{k+1} = p_k plus one more attribute of the image (3 attributes drawn in a
  random order per image from ``default_rng([seed, index])``).
Negatives are siblings: n_k has the prefix of p_{k-1} (n1: the empty prefix) and a *different*
value of the slot added at level k (n1: a different digit). Words are in canonical order (digit
first, then attributes in the order they were added), so p_k is a string prefix of p_{k+1}.

Ground truth is exact: caption a entails caption b iff the labels named by a are a subset of the
labels named by b (``entails``), so every level entails the next and n_k never entails p_k.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipspace.data import mad_schema as S
from clipspace.data.captions import SEP, parse_caption
from clipspace.data.mad import MADDataset

LEVELS = 4


@dataclass
class Chain:
    """Positive captions generic -> specific, sibling negatives, and the image index (or -1)."""

    positive: list[str]
    negative: list[str]
    index: int = -1


def entails(a: str, b: str) -> bool:
    """True iff MAD caption ``a`` is at least as generic as ``b``: labels(a) <= labels(b)."""
    pa, pb = parse_caption(a), parse_caption(b)
    return all(k in pb and pb[k] == v for k, v in pa.items())


def _n_values(key: str) -> int:
    return len(S.DIGIT_WORDS) if key == "digit" else len(S.VALUES[key])


def _other(rng: np.random.Generator, key: str, value: int) -> int:
    """A uniformly drawn value of ``key`` different from ``value``."""
    v = int(rng.integers(_n_values(key) - 1))
    return v + 1 if v >= value else v


def chain_for(labels: Mapping[str, int], rng: np.random.Generator, index: int = -1) -> Chain:
    """The chain of one image with labels ``labels`` (all of ``LABEL_KEYS``)."""
    order = ["digit", *(S.ATTRIBUTE_SLOTS[i] for i in rng.permutation(len(S.ATTRIBUTE_SLOTS)))]
    order = order[:LEVELS]
    words = [S.word(k, int(labels[k])) for k in order]
    positive = [SEP.join(words[: k + 1]) for k in range(LEVELS)]
    negative = []
    for k, key in enumerate(order):
        sibling = S.word(key, _other(rng, key, int(labels[key])))
        negative.append(SEP.join([*words[:k], sibling]))
    return Chain(positive, negative, int(index))


def chains_from_labels(
    labels: Mapping[str, np.ndarray], indices: np.ndarray | None = None, seed: int = 0
) -> list[Chain]:
    """One chain per row of the label arrays; row i uses ``default_rng([seed, indices[i]])``."""
    n = len(labels["digit"])
    idx = np.arange(n) if indices is None else np.asarray(indices)
    out = []
    for i in range(n):
        rng = np.random.default_rng([int(seed), int(idx[i])])
        out.append(chain_for({k: int(labels[k][i]) for k in S.LABEL_KEYS}, rng, index=i))
    return out


def mad_chains(root: str | Path | MADDataset, split: str = "test", seed: int = 0) -> list[Chain]:
    """Chains for every image of a MAD split; ``Chain.index`` is the position in that split
    (``MADDataset(root, split)[chain.index]`` is the image), the rng is keyed by the global index.
    """

    ds = root if isinstance(root, MADDataset) else MADDataset(root, split=split)
    return chains_from_labels(ds.labels, ds.indices, seed=seed)
