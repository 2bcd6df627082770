"""For cosine models, zero-shot classification and retrieval equal CLIP_benchmark's
(``clip_benchmark.metrics.zeroshot_classification``) on the same model and images.

CLIP_benchmark cannot be installed next to the CPU torch build with its dependencies (it pulls
open_clip and torchvision), so this test runs only where its package is importable, e.g.
``pip download clip_benchmark --no-deps`` unpacked on PYTHONPATH (its metrics modules need only
torch, scikit-learn and tqdm). Measured here with clip_benchmark 1.6.2: identical numbers
(docs/evaluation.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sklearn.metrics import balanced_accuracy_score
from torch.utils.data import DataLoader

from clipspace.eval import embed, evaluate, load_eval_dataset
from tests.data.test_imagefolder import make_folder
from tests.helpers.runs import tiny_run

zsc = pytest.importorskip("clip_benchmark.metrics.zeroshot_classification")


class _Pairs(list):
    """(image, label) pairs with the ``classes`` attribute CLIP_benchmark reads."""

    def __init__(self, items: list, classes: list[str]) -> None:
        super().__init__(items)
        self.classes = classes


def test_zeroshot_equals_clip_benchmark(tmp_path: Path, tiny_mad: Path) -> None:
    from clipspace.models import load_model_and_tokenizer

    root = make_folder(tmp_path / "f", {f"c{i}": 8 for i in range(7)}, size=28)
    templates = ["{c}", "a {c}", "the {c}-red"]
    (tmp_path / "t.txt").write_text("\n".join(templates) + "\n")
    run = tiny_run(tmp_path / "run", tiny_mad)
    model, tok = load_model_and_tokenizer(run)
    model.eval()
    ds = load_eval_dataset(f"imagefolder:{root}", model, templates=str(tmp_path / "t.txt"))
    ours = evaluate(model, f"imagefolder:{root}", ["zeroshot"], tokenizer=tok,
                    embeddings=embed(model, ds, tok, progress=False),
                    progress=False)["zeroshot"]["class"]
    pairs = _Pairs([(it["image"], it["class"]) for it in ds], ds.classnames)
    loader = DataLoader(pairs, batch_size=16)
    # CLIP_benchmark's classifier and logits; its ``accuracy`` helper calls float() on a 1-element
    # array, which numpy 2 rejects, so the last step (top-k and sklearn's balanced accuracy, as
    # its ``evaluate`` does) is written out here
    classifier = zsc.zero_shot_classifier(model, tok, ds.classnames, templates, "cpu", amp=False)
    logits, target = zsc.run_classification(model, classifier, loader, "cpu", amp=False)
    top5 = (logits.topk(5, 1).indices == target[:, None]).any(1).float().mean()
    assert ours["top1"] == pytest.approx(float((logits.argmax(1) == target).float().mean()))
    assert ours["top5"] == pytest.approx(float(top5))
    assert ours["mean_per_class_recall"] == pytest.approx(
        balanced_accuracy_score(target, logits.argmax(1)))


def test_retrieval_equals_clip_benchmark(tmp_path: Path, tiny_mad: Path) -> None:
    """Multi-caption retrieval (any of the image's captions is a hit) equals CLIP_benchmark's
    ``zeroshot_retrieval.evaluate`` on the same model, images and captions."""
    zsr = pytest.importorskip("clip_benchmark.metrics.zeroshot_retrieval")
    from PIL import Image

    from clipspace.models import load_model_and_tokenizer

    g = torch.Generator().manual_seed(3)
    (tmp_path / "img").mkdir()
    lines = ["filepath\ttitle"]
    for i in range(40):
        pixels = (torch.rand(24, 24, 3, generator=g) * 255).byte().numpy()
        Image.fromarray(pixels).save(tmp_path / "img" / f"{i}.png")
        lines += [f"img/{i}.png\tred {i} dog", f"img/{i}.png\tblue cat {i + 100}",
                  f"img/{i}.png\t{i * 7} small"][: 1 + i % 3]
    (tmp_path / "d.tsv").write_text("\n".join(lines) + "\n")
    run = tiny_run(tmp_path / "run", tiny_mad, seed=1)
    model, tok = load_model_and_tokenizer(run)
    model.eval()
    data = f"csv:{tmp_path / 'd.tsv'}"
    ours = evaluate(model, data, ["retrieval"], tokenizer=tok, progress=False)["retrieval"]
    ds = load_eval_dataset(data, model)
    items = [(it["image"], it["texts"]) for it in ds]
    loader = DataLoader(items, batch_size=16,
                        collate_fn=lambda b: (torch.stack([x for x, _ in b]), [t for _, t in b]))
    theirs = zsr.evaluate(model, loader, tok, "cpu", amp=False, recall_k_list=[1, 5, 10])
    for k in (1, 5, 10):
        assert ours[f"i2t_r{k}"] == pytest.approx(theirs[f"text_retrieval_recall@{k}"])
        assert ours[f"t2i_r{k}"] == pytest.approx(theirs[f"image_retrieval_recall@{k}"])
