"""MAD zero-shot label sets."""

from __future__ import annotations

from clipspace.data import mad_schema as S
from clipspace.data.captions import parse_caption
from clipspace.data.zeroshot import ZeroShotTask, mad_tasks


def test_mad_tasks_cover_digit_and_slots() -> None:
    tasks = mad_tasks()
    assert list(tasks) == list(S.LABEL_KEYS)
    assert tasks["digit"].classnames == list(S.DIGIT_WORDS)
    for slot in S.ATTRIBUTE_SLOTS:
        t = tasks[slot]
        assert t.label_key == slot and t.num_classes == len(S.VALUES[slot])
        assert t.classnames == [S.word(slot, i) for i in range(t.num_classes)]


def test_prompts_stay_in_vocabulary_and_name_the_class() -> None:
    for key, task in mad_tasks().items():
        prompts = task.prompts()
        assert len(prompts) == task.num_classes and len(task.templates) > 1
        for c, row in enumerate(prompts):
            assert len(row) == len(task.templates) == len(set(row))
            for text in row:
                assert parse_caption(text)[key] == c  # parse fails on out-of-vocab words


def test_custom_task() -> None:
    t = ZeroShotTask("x", "digit", ["1", "2"])
    assert t.prompts() == [["1"], ["2"]]
