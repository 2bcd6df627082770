"""``clipspace reproduce``: bad arguments exit 2 before any work."""

import pytest

from clipspace.cli import main


@pytest.mark.parametrize("ks", ["0,9", "a"])
def test_reproduce_imbalance_validates_ks(tmp_path, ks):
    assert main(["reproduce", "imbalance", "--out", str(tmp_path), "--ks", ks]) == 2
