"""reproduce radial: the before/after table."""

from __future__ import annotations

import math

import pytest


def test_before_after_table_reports_changes() -> None:
    from clipspace.experiments.radial import before_after_table

    before = {"hierarchy": {"precision": 0.1, "recall": 0.2, "tau_d": 0.3},
              "retrieval": {"i2t_r1": 0.5, "t2i_r1": 0.4}}
    after = {"hierarchy": {"precision": 0.1, "recall": 0.5, "tau_d": 0.9},
             "retrieval": {"i2t_r1": 0.495, "t2i_r1": 0.4}}
    table, rows = before_after_table(before, after)
    by_key = {r["key"]: r for r in rows}
    assert by_key["hierarchy.recall"]["change"] == pytest.approx(0.3)
    assert by_key["retrieval.i2t_r1"]["change"] == pytest.approx(-0.005)
    assert math.isnan(by_key["hierarchy_empty_root.recall"]["before"])  # absent -> nan
    assert "| HierarCaps tau_d (mean root) | 0.3000 | 0.9000 | +0.6000 |" in table
