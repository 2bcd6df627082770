"""``clipspace tokenizer train``: text and table inputs, bad column or file exits 2."""

from __future__ import annotations

import itertools
from pathlib import Path

from clipspace.data.tokenizer import get_tokenizer
from tests.helpers.mad import mad_corpus


def test_cli_tokenizer_train(tmp_path: Path) -> None:
    from clipspace.cli import main

    lines = tmp_path / "caps.txt"
    lines.write_text("\n".join(mad_corpus(100)) + "\n")
    table = tmp_path / "caps.csv"
    table.write_text("id,title\n" + "".join(f"{i},{c}\n" for i, c in
                                            zip(itertools.count(), mad_corpus(50))))
    out = tmp_path / "tok" / "tokenizer.json"
    assert main(["tokenizer", "train", "--input", str(lines), str(table), "--column", "title",
                 "--out", str(out), "--context-length", "20"]) == 0
    t = get_tokenizer(out)
    assert t.context_length == 20 and t.decode(t.encode("7-cyan")) == "7-cyan"
    assert len(t.encode("thickening")) == 3
    assert main(["tokenizer", "train", "--input", str(table), "--column", "nope",
                 "--out", str(out)]) == 2
    assert main(["tokenizer", "train", "--input", str(tmp_path / "missing.txt"),
                 "--out", str(out)]) == 2
