"""``clipspace embed`` writes points once; ``eval --embeddings`` and ``analyze --embeddings``
read them back and give the numbers of a fresh embedding pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clipspace.cli import main
from clipspace.data.embeddings_io import read_arrays
from clipspace.eval import load_saved_embeddings
from tests.helpers.runs import tiny_run


def _run(tmp_path: Path, tiny_mad: Path) -> Path:
    run = tiny_run(tmp_path / "run", tiny_mad, "meru", mad_captions=True)
    return run


@pytest.mark.parametrize("suffix", [".npz", ".safetensors", ".pt"])
def test_embed_then_eval_and_analyze(tmp_path: Path, tiny_mad: Path, capsys, suffix) -> None:
    run, data = _run(tmp_path, tiny_mad), f"mad:{tiny_mad}"
    out = tmp_path / f"emb{suffix}"
    assert main(["embed", str(run), "--data", data, "--out", str(out), "--max-samples", "60",
                 "--no-progress"]) == 0
    assert "geometry lorentz" in capsys.readouterr().out
    emb, meta = load_saved_embeddings(out)
    assert len(emb) == 60 and meta["geometry"] == "lorentz" and meta["data"] == data
    assert meta["curv"] == pytest.approx(1.0) and emb.captions[0]
    assert {"digit", "colour", "caption_id", "positions"} <= set(read_arrays(out))
    suite = ["--suite", "zeroshot,retrieval,hierarchy", "--no-progress"]
    assert main(["eval", str(run), "--data", data, "--embeddings", str(out), *suite]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert main(["eval", str(run), "--data", data, "--max-samples", "60", *suite]) == 0
    fresh = json.loads(capsys.readouterr().out)
    for key in ("zeroshot", "retrieval"):
        assert from_file[key] == fresh[key]
    for key in ("precision", "recall", "tau_d"):
        assert from_file["hierarchy"][key] == fresh["hierarchy"][key]
    assert main(["analyze", "gap", "--embeddings", str(out), "--plot", str(tmp_path / "f")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 60 and (tmp_path / "f" / "root_distance.png").is_file()


def test_eval_with_a_foreign_embedding_file_is_exit_2(tmp_path: Path, tiny_mad: Path,
                                                      capsys) -> None:
    run = _run(tmp_path, tiny_mad)
    bogus = tmp_path / "x.npz"
    import numpy as np

    np.savez(bogus, image=np.zeros((3, 4), np.float32))
    assert main(["eval", str(run), "--data", f"mad:{tiny_mad}", "--embeddings", str(bogus)]) == 2
    assert "not a clipspace embedding file" in capsys.readouterr().err


def test_multi_caption_embeddings_round_trip(tmp_path: Path, tiny_mad: Path, capsys) -> None:
    """Every caption of a multi-caption dataset survives embed -> eval --embeddings."""
    from PIL import Image

    (tmp_path / "img").mkdir()
    lines = ["filepath\ttitle"]
    for i in range(6):
        Image.new("RGB", (20, 20), (40 * i, 10, 200 - 30 * i)).save(tmp_path / "img" / f"{i}.png")
        lines += [f"img/{i}.png\tred {i}", f"img/{i}.png\tdark {i % 3}"]
    (tmp_path / "d.tsv").write_text("\n".join(lines) + "\n")
    run, data = _run(tmp_path, tiny_mad), f"csv:{tmp_path / 'd.tsv'}"
    out = tmp_path / "e.npz"
    assert main(["embed", str(run), "--data", data, "--out", str(out), "--no-progress"]) == 0
    emb, _ = load_saved_embeddings(out)
    assert emb.all_text is not None and emb.all_text.shape[0] == 12 and len(emb.all_captions) == 12
    assert list(emb.text_image) == [i // 2 for i in range(12)]
    capsys.readouterr()
    args = ["eval", str(run), "--data", data, "--suite", "retrieval", "--no-progress"]
    assert main([*args, "--embeddings", str(out)]) == 0
    from_file = json.loads(capsys.readouterr().out)["retrieval"]
    assert main(args) == 0
    assert from_file == json.loads(capsys.readouterr().out)["retrieval"]


def test_embed_streams_into_a_directory(tmp_path: Path, tiny_mad: Path, capsys) -> None:
    """--out DIR: memory-mapped .npy points equal the in-memory file's; eval and analyze read
    the directory like a file."""
    import numpy as np

    run, data = _run(tmp_path, tiny_mad), f"mad:{tiny_mad}"
    common = ["--data", data, "--max-samples", "50", "--batch-size", "16", "--no-progress"]
    assert main(["embed", str(run), *common, "--out", str(tmp_path / "shards")]) == 0
    assert main(["embed", str(run), *common, "--out", str(tmp_path / "one.npz")]) == 0
    capsys.readouterr()
    shards = np.load(tmp_path / "shards" / "image.npy", mmap_mode="r")
    assert isinstance(shards, np.memmap) and shards.shape[0] == 50
    a, meta = load_saved_embeddings(tmp_path / "shards")
    b, _ = load_saved_embeddings(tmp_path / "one.npz")
    assert meta["geometry"] == "lorentz" and a.captions == b.captions
    torch.testing.assert_close(a.image, b.image)
    torch.testing.assert_close(a.text, b.text, rtol=1e-5, atol=1e-6)
    assert (a.labels["digit"] == b.labels["digit"]).all()
    assert main(["eval", str(run), "--data", data, "--embeddings", str(tmp_path / "shards"),
                 "--suite", "zeroshot", "--no-progress"]) == 0
    assert main(["analyze", "gap", "--embeddings", str(tmp_path / "shards")]) == 0
    out = capsys.readouterr().out
    assert '"geometry": "lorentz"' in out
