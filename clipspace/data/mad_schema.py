"""The MAD (Multimodal Attributes and Digits) schema shared by the generator and the readers.

docs/reference.md section 5: every MNIST digit in all 24 combinations of stroke x swelling x
fracture x scale, one of 7 colours drawn per sample. A caption is the digit word plus k attribute
words, shuffled and joined by "-" (e.g. "thinning-3-red").

On-disk layout of a MAD directory (written atomically by ``clipspace data mad``):
  manifest.json   {"format": "clipspace-mad", "version": 1, "source", "seed", "counts", ...}
  images.npy      uint8 array (N, 28, 28, 3)
  metadata.csv    columns METADATA_COLUMNS, one row per image, in image order
  tokenizer.json  byte-level BPE trained on MAD captions
"""

from __future__ import annotations

FORMAT = "clipspace-mad"
VERSION = 1

DIGIT_WORDS: tuple[str, ...] = tuple(str(d) for d in range(10))

# slot -> ordered values (index = integer label); COMBO_SLOTS span the 24 variants of a digit.
VALUES: dict[str, tuple[str, ...]] = {
    "stroke": ("plain", "thickening", "thinning"),
    "swelling": ("no", "yes"),
    "fracture": ("no", "yes"),
    "scale": ("large", "small"),
    "colour": ("gray", "red", "green", "blue", "cyan", "magenta", "yellow"),
}
ATTRIBUTE_SLOTS: tuple[str, ...] = ("stroke", "swelling", "fracture", "scale", "colour")
COMBO_SLOTS: tuple[str, ...] = ("stroke", "swelling", "fracture", "scale")

# slot -> value -> caption word (one token-like word each, no "-" inside)
WORDS: dict[str, dict[str, str]] = {
    "stroke": {"plain": "plain", "thickening": "thickening", "thinning": "thinning"},
    "swelling": {"no": "unswollen", "yes": "swelling"},
    "fracture": {"no": "unbroken", "yes": "fracture"},
    "scale": {"large": "large", "small": "small"},
    "colour": {c: c for c in VALUES["colour"]},
}

LABEL_KEYS: tuple[str, ...] = ("digit", *ATTRIBUTE_SLOTS)
METADATA_COLUMNS: tuple[str, ...] = ("index", "split", "source", *LABEL_KEYS)

# Image normalisation used by every MAD reader: x in [0, 255] -> (x / 255 - MEAN) / STD
MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
STD: tuple[float, float, float] = (0.5, 0.5, 0.5)


def word(slot: str, value: str | int) -> str:
    """Caption word of a slot value (``value`` may be the integer label)."""
    if slot == "digit":
        return DIGIT_WORDS[int(value)]
    if isinstance(value, int):
        value = VALUES[slot][value]
    return WORDS[slot][value]
