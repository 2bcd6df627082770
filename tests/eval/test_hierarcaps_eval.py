"""evaluate() on a HierarCaps CSV + image folder (tokenizer borrowed from the tiny MAD)."""

import json

import numpy as np
import pytest
import torch

models = pytest.importorskip("clipspace.models")
pytest.importorskip("clipspace.data.hierarcaps")

from clipspace.eval import evaluate  # noqa: E402


def test_hierarcaps_csv_and_images(tiny_mad, tmp_path) -> None:
    from PIL import Image

    from clipspace.data.tokenizer import get_tokenizer

    rng = np.random.default_rng(0)
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    lines = ["id,captions,image_url"]
    chains = [["animal", "a dog", "a brown dog", "a brown dog on grass"],
              ["vehicle", "a car", "a red car", "a red car on a road"],
              ["food", "a fruit", "a green apple", "a green apple on a table"]]
    for i, ch in enumerate(chains):
        name = f"COCO_val2014_{i:012d}.jpg"
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(img_dir / name)
        lines.append(f'{i},"{" => ".join(ch)}",http://x/{name}')
    csv = tmp_path / "test.csv"
    csv.write_text("\n".join(lines) + "\n")
    torch.manual_seed(0)
    model = models.create_model("meru")
    tok = get_tokenizer(tiny_mad / "tokenizer.json", context_length=model.context_length)
    res = evaluate(model, f"hierarcaps:{csv}", image_dir=str(img_dir), tokenizer=tok,
                   progress=False, suites=["hierarchy", "zeroshot", "retrieval"])
    h = res["hierarchy"]
    assert res["n"] == 3 and h["candidates"] == 12
    assert 0 <= h["precision"] <= 1 and 0 <= h["recall"] <= 1
    assert res["zeroshot"] == {"skipped": "no class labels in this data"}
    assert h["traversals"][0]["chain"] == chains[0]
    json.dumps(res)
