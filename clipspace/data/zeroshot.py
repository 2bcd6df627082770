"""Zero-shot label sets for MAD: the digit and each attribute slot, with prompt templates.

Templates stay inside MAD's caption vocabulary (words joined by "-") so the tiny MAD tokenizer
knows every token. The ensemble for a slot averages over all values of one *other* slot, which
keeps the prompt neutral in that slot (REFERENCE.md s.4: class prototype = mean over templates):
  digit:      "{}" and "{}-<colour>" for the 7 colours            (8 templates)
  attribute:  "{}" and "<digit>-{}" for the 10 digits             (11 templates)
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


def mad_tasks() -> dict[str, ZeroShotTask]:
    """``{"digit": ..., "stroke": ..., "swelling": ..., "fracture": ..., "scale": ...,
    "colour": ...}``; classnames are caption words in label order."""
    tasks = {"digit": ZeroShotTask("digit", "digit", list(S.DIGIT_WORDS), digit_templates())}
    for slot in S.ATTRIBUTE_SLOTS:
        names = [S.word(slot, v) for v in S.VALUES[slot]]
        tasks[slot] = ZeroShotTask(slot, slot, names, attribute_templates())
    return tasks
