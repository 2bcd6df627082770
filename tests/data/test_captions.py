"""Caption modes and parse_caption."""

from __future__ import annotations

import numpy as np
import pytest

from clipspace.data import mad_schema as S
from clipspace.data.captions import (
    CaptionPlan,
    caption,
    draw_slots,
    parse_caption,
    vocabulary,
)
from clipspace.errors import DataError
from tests.helpers.mad import random_labels

LABELS = {"digit": 3, "stroke": 2, "swelling": 1, "fracture": 0, "scale": 1, "colour": 1}


def test_caption_words_and_parse() -> None:
    rng = np.random.default_rng(0)
    text = caption(LABELS, ["stroke", "colour"], rng)
    assert sorted(text.split("-")) == sorted(["3", "thinning", "red"])
    assert parse_caption(text) == {"digit": 3, "stroke": 2, "colour": 1}
    full = caption(LABELS, list(S.ATTRIBUTE_SLOTS), rng)
    assert parse_caption(full) == LABELS
    assert parse_caption("") == {}
    assert len(set(vocabulary())) == len(vocabulary()) == 10 + 3 + 2 + 2 + 2 + 7


def test_parse_errors() -> None:
    with pytest.raises(DataError, match="purple"):
        parse_caption("3-purple")
    with pytest.raises(DataError, match="twice"):
        parse_caption("3-red-blue")


@pytest.mark.parametrize("k", range(6))
def test_num_attrs_k(k: int) -> None:
    labels = random_labels(200)
    plan = CaptionPlan.draw(200, num_attrs=k, seed=1)
    seen_slots = set()
    for i in range(200):
        parsed = parse_caption(plan.text(i, labels))
        assert len(parsed) == k + 1 and "digit" in parsed
        assert all(parsed[s] == labels[s][i] for s in parsed)
        seen_slots.update(plan.slots(i))
    if k:
        assert seen_slots == set(S.ATTRIBUTE_SLOTS)  # every slot is drawn sometimes
    # word order is shuffled: the digit is not always first
    if k:
        assert len({int(np.flatnonzero(plan.codes[i] == 0)[0]) for i in range(200)}) > 1


@pytest.mark.parametrize("k", [0, 1, 3])
def test_main_object_always_present(k: int) -> None:
    plan = CaptionPlan.draw(100, num_attrs=k, main_object="scale", seed=2)
    for i in range(100):
        slots = plan.slots(i)
        assert "scale" in slots and len(slots) == max(k, 1)
    rng = np.random.default_rng(0)
    for _ in range(20):
        slots = draw_slots(rng, k, main_object="colour")
        assert slots[0] == "colour" and len(slots) == max(k, 1) and len(set(slots)) == len(slots)


def test_objects_only() -> None:
    labels = random_labels(30)
    plan = CaptionPlan.draw(30, num_attrs=5, objects_only=True, main_object="colour")
    assert [plan.text(i, labels) for i in range(30)] == [str(d) for d in labels["digit"]]
    assert draw_slots(np.random.default_rng(0), 5, objects_only=True) == []


def test_deterministic_for_seed_and_epoch() -> None:
    a = CaptionPlan.draw(100, num_attrs=2, seed=5).codes
    assert np.array_equal(a, CaptionPlan.draw(100, num_attrs=2, seed=5).codes)
    assert not np.array_equal(a, CaptionPlan.draw(100, num_attrs=2, seed=6).codes)
    assert not np.array_equal(a, CaptionPlan.draw(100, num_attrs=2, seed=5, epoch=1).codes)


def test_bad_mode() -> None:
    with pytest.raises(DataError, match="main_object"):
        CaptionPlan.draw(3, main_object="size")
    with pytest.raises(DataError, match="num_attrs"):
        draw_slots(np.random.default_rng(0), -1)
