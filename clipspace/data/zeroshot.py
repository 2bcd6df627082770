"""Zero-shot label sets for MAD: the digit and each attribute slot, with prompt templates.

Templates stay inside MAD's caption vocabulary (words joined by "-") so the tiny MAD tokenizer
knows every token. The ensemble for a slot averages over all values of one *other* slot, which
keeps the prompt neutral in that slot (docs/reference.md section 4: class prototype = mean over
templates):
  digit:      "{}" and "{}-<colour>" for the 7 colours            (8 templates)
  attribute:  "{}" and "<digit>-{}" for the 10 digits             (11 templates)

With ``num_attrs = k > 0`` the templates instead look like the training captions: the class word
plus the words of the other slots a k-attribute caption holds, with random values in random
order (seeded). Averaging over them marginalises the other slots, so the prototype of "3" is the
mean of "3"-captions of every colour, stroke, ... rather than an out-of-distribution "3".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clipspace.data import mad_schema as S
from clipspace.data.captions import SEP


@dataclass
class ZeroShotTask:
    """Classify ``label_key`` among ``classnames`` (index = integer label) using ``templates``."""

    name: str
    label_key: str
    classnames: list[str]
    templates: list[str] = field(default_factory=lambda: ["{}"])

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def prompts(self) -> list[list[str]]:
        """``prompts()[c][t]`` = template t filled with class c."""
        return [[t.format(c) for t in self.templates] for c in self.classnames]


def digit_templates() -> list[str]:
    return ["{}", *(f"{{}}{SEP}{S.word('colour', c)}" for c in S.VALUES["colour"])]


def attribute_templates() -> list[str]:
    return ["{}", *(f"{d}{SEP}{{}}" for d in S.DIGIT_WORDS)]


def caption_templates(key: str, num_attrs: int, count: int = 48, seed: int = 0) -> list[str]:
    """``count`` caption-shaped templates for classifying ``key`` ("digit" or a slot): "{}" (the
    class word) plus the words of the other slots that a ``num_attrs``-attribute caption holds
    (the digit is always one of them for an attribute task), random values, random order."""
    rng = np.random.default_rng([seed, S.LABEL_KEYS.index(key)])
    others = [s for s in S.ATTRIBUTE_SLOTS if s != key]
    n_other = num_attrs if key == "digit" else num_attrs - 1
    out: list[str] = []
    for _ in range(count):
        slots = list(rng.choice(others, size=min(n_other, len(others)), replace=False))
        words = ["{}"] + [S.word(s, int(rng.integers(len(S.VALUES[s])))) for s in slots]
        if key != "digit":
            words.append(S.DIGIT_WORDS[int(rng.integers(10))])
        out.append(SEP.join(words[i] for i in rng.permutation(len(words))))
    return sorted(set(out), key=out.index)


def mad_tasks(num_attrs: int = 0, count: int = 48, seed: int = 0) -> dict[str, ZeroShotTask]:
    """``{"digit": ..., "stroke": ..., "swelling": ..., "fracture": ..., "scale": ...,
    "colour": ...}``; classnames are caption words in label order. ``num_attrs`` > 0: templates
    shaped like ``num_attrs``-attribute training captions (``caption_templates``)."""

    def templates(key: str, plain: list[str]) -> list[str]:
        return caption_templates(key, num_attrs, count, seed) if num_attrs > 0 else plain

    tasks = {"digit": ZeroShotTask("digit", "digit", list(S.DIGIT_WORDS),
                                   templates("digit", digit_templates()))}
    for slot in S.ATTRIBUTE_SLOTS:
        names = [S.word(slot, v) for v in S.VALUES[slot]]
        tasks[slot] = ZeroShotTask(slot, slot, names, templates(slot, attribute_templates()))
    return tasks
