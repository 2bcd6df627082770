"""The demo's report section: the verdict follows the rule of ``experiments.demo`` (end to
end: tests/cli/test_demo.py)."""

from __future__ import annotations

import math

import pytest

from clipspace.experiments.demo import ZS_TOLERANCE, demo_section, demo_verdict

FLAT = {"clip": ("sphere", 0.20, 0.90), "euclip": ("euclidean", 0.30, 0.80)}


@pytest.mark.parametrize(("meru", "verdict"), [
    (("lorentz", 0.35, 0.90), "agrees"),  # better hierarchy, zero-shot kept
    (("lorentz", 0.35, 0.90 - ZS_TOLERANCE - 0.01), "partly"),  # better hierarchy, zs lost
    (("lorentz", 0.25, 0.95), "partly"),  # zs kept, hierarchy not better than euclip's 0.30
    (("lorentz", 0.25, 0.50), "disagrees"),
])
def test_verdict_rule(meru, verdict):
    got, finding, headline = demo_verdict({**FLAT, "meru": meru})
    assert got == verdict
    assert headline["tau_d, best Lorentz"] == meru[1] and headline["tau_d, best other"] == 0.30
    assert headline["zero-shot digit, best other"] == 0.90
    assert f"{meru[1]:.3f} (meru) vs 0.300 (euclip)" in finding


def test_not_comparable_without_both_sides():
    verdict, finding, headline = demo_verdict(FLAT)
    assert verdict == "not comparable" and "clip, euclip" in finding
    assert math.isnan(headline["tau_d, best Lorentz"])
    assert demo_verdict({**FLAT, "meru": ("lorentz", math.nan, 0.9)})[0] == "not comparable"


def test_section_table_and_headline():
    sec = demo_section({**FLAT, "atmg": ("lorentz", 0.4, 0.91)})
    assert sec.verdict == "agrees" and sec.paper == "MERU / ATMG"
    assert sec.tables[0].rows[-1] == ["atmg", "lorentz", "0.400", "0.910"]
    assert sec.headline["zero-shot digit, best Lorentz"] == 0.91
