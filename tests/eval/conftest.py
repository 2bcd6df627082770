"""A tiny hand-written MAD directory (random pixels, every label slot) for evaluation tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def write_tiny_mad(root: Path, n: int = 40, seed: int = 0) -> Path:
    from clipspace.data import mad_schema as S
    from clipspace.data.captions import vocabulary
    from clipspace.data.tokenizer import train_tokenizer

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "images.npy", rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8))
    cols = list(S.METADATA_COLUMNS)
    lines = [",".join(cols)]
    for i in range(n):
        labels = {"digit": int(rng.integers(10))}
        labels.update({k: int(rng.integers(len(S.VALUES[k]))) for k in S.ATTRIBUTE_SLOTS})
        split = "train" if i < n // 2 else "test"
        row = {"index": i, "split": split, "source": i, **labels}
        lines.append(",".join(str(row[c]) for c in cols))
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    (root / "manifest.json").write_text(json.dumps({"format": S.FORMAT, "version": S.VERSION}))
    words = vocabulary()
    texts = words + ["-".join(rng.choice(words, 3)) for _ in range(200)]
    train_tokenizer(texts, vocab_size=300, context_length=16).save(root / "tokenizer.json")
    return root


@pytest.fixture(scope="session")
def tiny_mad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_mad(tmp_path_factory.mktemp("mad") / "mad")
