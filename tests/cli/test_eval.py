"""`clipspace eval` on a saved checkpoint: JSON out, saved embeddings, zero-shot ensembles."""

import json

import pytest
import torch

models = pytest.importorskip("clipspace.models")

from clipspace.cli import main  # noqa: E402


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


def test_cli_eval_zeroshot_ensemble(tiny_mad, tmp_path, capsys) -> None:
    """--zeroshot-ensemble score gives the accuracy of the mean per-template score; a bad value
    exits 2."""
    from clipspace.data.tokenizer import get_tokenizer
    from clipspace.data.zeroshot import mad_tasks
    from clipspace.eval import embed, load_eval_dataset
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
    emb = embed(model, data, tok, batch_size=8, progress=False)
    task = mad_tasks(data.num_attrs)["colour"]
    scores = zeroshot_scores(model, emb.image, tok, task.classnames, task.templates,
                             ensemble="score")
    assert got == pytest.approx(accuracy(scores, emb.labels["colour"])["top1"])
    with pytest.raises(SystemExit) as err:
        main(["eval", str(run), "--data", f"mad:{tiny_mad}", "--zeroshot-ensemble", "max"])
    assert err.value.code == 2
