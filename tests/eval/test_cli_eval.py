"""`clipspace eval` on a saved checkpoint; HierarCaps CSV + image folder evaluation."""

import json

import numpy as np
import pytest
import torch

models = pytest.importorskip("clipspace.models")
pytest.importorskip("clipspace.data.hierarcaps")

from clipspace.cli import main  # noqa: E402
from clipspace.eval import evaluate  # noqa: E402


def test_cli_eval_writes_json(tiny_mad, tmp_path, capsys) -> None:
    from clipspace.models.factory import save_pretrained

    torch.manual_seed(0)
    run = save_pretrained(models.create_model("euclip"), tmp_path / "run")
    out = tmp_path / "res.json"
    code = main(["eval", str(run), "--data", f"mad:{tiny_mad}", "--suite", "zeroshot,retrieval",
                 "--batch-size", "8", "--out", str(out), "--no-progress",
                 "--save-embeddings", str(tmp_path / "emb.npz")])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(out.read_text())
    assert printed == saved
    assert set(saved) >= {"zeroshot", "retrieval", "n", "embeddings"}
    assert "linear_probe" not in saved
    # analysis from the saved embeddings
    code = main(["analyze", "moad", "--image-emb", str(tmp_path / "emb.npz")])
    assert code == 0
    assert "moad" in json.loads(capsys.readouterr().out)
    code = main(["eval", str(tmp_path / "nothing"), "--data", f"mad:{tiny_mad}"])
    assert code == 2


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


def test_cli_analyze_from_run(tiny_mad, capsys) -> None:
    code = main(["analyze", "gap", "--run", "clip", "--data", f"mad:{tiny_mad}"])
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 20 and 0 <= res["rmg"] <= 1
    code = main(["analyze", "gap", "--run", "clip"])
    assert code == 2


def test_cli_eval_zeroshot_ensemble(tiny_mad, tmp_path, capsys) -> None:
    """--zeroshot-ensemble score gives the accuracy of the mean per-template score; a bad value
    exits 2."""
    from clipspace.data.tokenizer import get_tokenizer
    from clipspace.data.zeroshot import mad_tasks
    from clipspace.eval.evaluate import embed_dataset, load_eval_dataset
    from clipspace.eval.zeroshot import accuracy, zeroshot_scores
    from clipspace.models.factory import save_pretrained

    torch.manual_seed(0)
    model = models.create_model("atmg").eval()
    run = save_pretrained(model, tmp_path / "run")
    code = main(["eval", str(run), "--data", f"mad:{tiny_mad}", "--suite", "zeroshot",
                 "--batch-size", "8", "--no-progress", "--zeroshot-ensemble", "score"])
    assert code == 0
    got = json.loads(capsys.readouterr().out)["zeroshot"]["colour"]["top1"]
    tok = get_tokenizer(tiny_mad)
    data = load_eval_dataset(f"mad:{tiny_mad}", model, "test")
    emb = embed_dataset(model, data, tok, batch_size=8, progress=False)
    task = mad_tasks(data.num_attrs)["colour"]
    scores = zeroshot_scores(model, emb["image"], tok, task.classnames, task.templates,
                             ensemble="score")
    assert got == pytest.approx(accuracy(scores, emb["labels"]["colour"])["top1"])
    with pytest.raises(SystemExit) as err:
        main(["eval", str(run), "--data", f"mad:{tiny_mad}", "--zeroshot-ensemble", "max"])
    assert err.value.code == 2
