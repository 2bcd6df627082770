"""MAD captions: the digit word plus k attribute words, shuffled, joined by "-" (docs/reference.md
section 5).

Caption modes (the knobs of the "Two Effects, One Trigger" experiments):
  * ``objects_only``  -- the digit word alone;
  * ``num_attrs = k`` -- k of the 5 attribute slots drawn without replacement (k = 5 describes the
    image fully; smaller k = more information imbalance between image and text);
  * ``main_object``   -- one slot that is always present; the other ``k - 1`` are drawn from the
    remaining 4 (with k = 0 the main slot is still present: "always" wins).

``CaptionPlan`` draws slot choices and word orders for a whole dataset at once (vectorised) from
``numpy.random.default_rng([seed, epoch])``; with a fixed plan (epoch 0) a sample's caption depends
only on the seed and its index; ``redraw_per_epoch`` draws a new plan per epoch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from clipspace.data import mad_schema as S
from clipspace.errors import DataError

SEP = "-"
# token codes used by CaptionPlan: 0 = digit, 1 + i = ATTRIBUTE_SLOTS[i]
_CODE_KEYS: tuple[str, ...] = ("digit", *S.ATTRIBUTE_SLOTS)

# caption word -> (label key, integer label); words are unique across slots
WORD_TO_LABEL: dict[str, tuple[str, int]] = {w: ("digit", i) for i, w in enumerate(S.DIGIT_WORDS)}
for _slot in S.ATTRIBUTE_SLOTS:
    for _i, _v in enumerate(S.VALUES[_slot]):
        _w = S.WORDS[_slot][_v]
        if _w in WORD_TO_LABEL:  # pragma: no cover - schema invariant
            raise AssertionError(f"caption word {_w!r} is not unique")
        WORD_TO_LABEL[_w] = (_slot, _i)


def vocabulary() -> list[str]:
    """Every caption word (digits, then attribute words in schema order)."""
    return list(WORD_TO_LABEL)


def caption_words(labels: Mapping[str, int], slots: Sequence[str]) -> list[str]:
    """Unshuffled words: the digit word, then the word of each slot in ``slots`` order."""
    words = [S.word("digit", int(labels["digit"]))]
    words += [S.word(s, int(labels[s])) for s in slots]
    return words


def caption(labels: Mapping[str, int], slots: Sequence[str], rng: np.random.Generator) -> str:
    """Digit word + the words of ``slots`` for ``labels``, shuffled with ``rng``, joined by "-"."""
    words = caption_words(labels, slots)
    order = rng.permutation(len(words))
    return SEP.join(words[i] for i in order)


def parse_caption(text: str) -> dict[str, int]:
    """Inverse of ``caption``: ``"thinning-3-red"`` -> ``{"stroke": 2, "digit": 3, "colour": 1}``.

    Raises DataError on an unknown word or a slot named twice.
    """
    out: dict[str, int] = {}
    for w in text.split(SEP) if text else []:
        if w not in WORD_TO_LABEL:
            raise DataError(f"caption {text!r}: unknown word {w!r}")
        key, value = WORD_TO_LABEL[w]
        if key in out:
            raise DataError(f"caption {text!r}: slot {key!r} appears twice")
        out[key] = value
    return out


def check_mode(num_attrs: int, main_object: str = "", objects_only: bool = False) -> None:
    """Validate caption-mode settings (DataError naming the bad key)."""
    if not 0 <= int(num_attrs) <= len(S.ATTRIBUTE_SLOTS):
        raise DataError(f"data.num_attrs must be in 0..{len(S.ATTRIBUTE_SLOTS)}, got {num_attrs}")
    if main_object and main_object not in S.ATTRIBUTE_SLOTS:
        raise DataError(
            f"data.main_object must be '' or one of {list(S.ATTRIBUTE_SLOTS)}, got {main_object!r}"
        )


def draw_slots(
    rng: np.random.Generator, num_attrs: int, main_object: str = "", objects_only: bool = False
) -> list[str]:
    """The attribute slots of one caption under a caption mode."""
    check_mode(num_attrs, main_object, objects_only)
    if objects_only:
        return []
    if main_object:
        rest = [s for s in S.ATTRIBUTE_SLOTS if s != main_object]
        k = max(int(num_attrs) - 1, 0)
        return [main_object, *(rest[i] for i in rng.choice(len(rest), size=k, replace=False))]
    idx = rng.choice(len(S.ATTRIBUTE_SLOTS), size=int(num_attrs), replace=False)
    return [S.ATTRIBUTE_SLOTS[i] for i in idx]


@dataclass
class CaptionPlan:
    """Per-sample word codes (N, n_words) in caption order; 0 = digit, 1 + i = slot i."""

    codes: np.ndarray

    @classmethod
    def draw(
        cls,
        n: int,
        num_attrs: int = 5,
        main_object: str = "",
        objects_only: bool = False,
        seed: int = 0,
        epoch: int = 0,
    ) -> CaptionPlan:
        """Draw slots (without replacement) and word order for ``n`` samples at once."""
        check_mode(num_attrs, main_object, objects_only)
        rng = np.random.default_rng([int(seed), int(epoch)])
        n_slots = len(S.ATTRIBUTE_SLOTS)
        k = 0 if objects_only else int(num_attrs)
        keys = rng.random((n, n_slots))
        if main_object and not objects_only:
            keys[:, S.ATTRIBUTE_SLOTS.index(main_object)] = -1.0  # always drawn first
            k = max(k, 1)
        chosen = np.argsort(keys, axis=1, kind="stable")[:, :k] + 1
        codes = np.concatenate([np.zeros((n, 1), dtype=np.int64), chosen], axis=1)
        order = np.argsort(rng.random(codes.shape), axis=1, kind="stable")
        return cls(np.take_along_axis(codes, order, axis=1).astype(np.int8))

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def slots(self, i: int) -> list[str]:
        """Attribute slots in caption ``i`` (caption order)."""
        return [_CODE_KEYS[c] for c in self.codes[i] if c != 0]

    def text(self, i: int, labels: Mapping[str, np.ndarray]) -> str:
        """Caption ``i`` given label arrays aligned with the plan."""
        return SEP.join(S.word(_CODE_KEYS[c], int(labels[_CODE_KEYS[c]][i])) for c in self.codes[i])
