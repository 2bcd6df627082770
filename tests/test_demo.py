"""The demo driver's helpers (``clipspace demo`` end to end: tests/cli/test_demo.py)."""

from clipspace.demo import comparison_table


def test_comparison_table_handles_missing_metrics():
    table = comparison_table({"a": {"zeroshot": {"digit": {"top1": 0.5}}}, "b": {}})
    lines = table.splitlines()
    assert len(lines) == 3 and "0.500" in lines[1] and lines[2].split()[1] == "-"
