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

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipspace.config.textfile import read_utf8
from clipspace.data import mad_schema as S
from clipspace.data.captions import SEP
from clipspace.errors import DataError


@dataclass
class ZeroShotTask:
    """Classify ``label_key`` among ``classnames`` (index = integer label) using ``templates``
    (``{}`` or ``{c}`` marks the class name), or per-class prompt lists ``class_prompts``."""

    name: str
    label_key: str
    classnames: list[str]
    templates: list[str] = field(default_factory=lambda: ["{}"])
    class_prompts: list[list[str]] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def prompts(self) -> list[list[str]]:
        """``prompts()[c]`` = the prompts of class c (templates filled with its name)."""
        if self.class_prompts is not None:
            return self.class_prompts
        return [[fill(t, c) for t in self.templates] for c in self.classnames]

    @classmethod
    def from_prompts(cls, name: str, label_key: str, classnames: list[str],
                     prompts: list[str] | dict[str, list[str]]) -> ZeroShotTask:
        """A task from ``read_templates`` output: shared templates or per-class prompts."""
        if isinstance(prompts, dict):
            return cls(name, label_key, classnames, ["{}"],
                       class_prompts=[list(prompts[c]) for c in classnames])
        return cls(name, label_key, classnames, list(prompts))


def fill(template: str, classname: str) -> str:
    """A template with ``{c}`` (CLIP_benchmark) or ``{}`` replaced by the class name."""
    return template.replace("{c}", classname).replace("{}", classname)


def _read_lines(path: str | Path, what: str) -> list[str]:
    """The non-empty stripped lines of a UTF-8 text file (``read_utf8``)."""
    text = read_utf8(Path(path), f"{what} file")
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_classnames(path: str | Path, expected: int) -> list[str]:
    """One class name per line, in sorted class-folder order; the count must match."""
    names = _read_lines(path, "class names")
    if len(names) != expected:
        raise DataError(f"{path}: {len(names)} class names for {expected} class folders")
    return names


def _json_object(path: str | Path, text: str) -> dict | None:
    """The JSON object in ``text``, None when it is not JSON (a .json file must be)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if Path(path).suffix.lower() == ".json":
            raise DataError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from None
        return None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object {{class name: [prompts]}}")
    return data


def read_templates(path: str | Path, classnames: list[str]) -> list[str] | dict[str, list[str]]:
    """Prompt templates: a JSON object {class name: [prompts]} (every class needs one), else
    one template per line, each holding ``{c}`` (CLIP_benchmark's conventions)."""
    lines = _read_lines(path, "templates")
    data = _json_object(path, "\n".join(lines))
    if data is not None:
        missing = [c for c in classnames if not data.get(c)]
        if missing:
            raise DataError(f"{path}: no prompts for classes {missing[:5]}")
        return {c: [str(t) for t in data[c]] for c in classnames}
    for i, line in enumerate(lines, 1):
        if "{c}" not in line and "{}" not in line:
            raise DataError(f"{path}, line {i}: template {line!r} has no {{c}} placeholder")
    if not lines:
        raise DataError(f"{path}: no templates")
    return lines


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
