"""Retrieval with several captions per image (COCO / Flickr30k style): ``csv:``, ``coco:`` and
``wds:`` evaluation data, ``Embeddings.all_text`` / ``text_image``, the any-caption Recall@K
(hand-computed and, on the real HierarCaps images, brute force), and ``clipspace eval``."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from clipspace.data.captioned_images import CaptionedImages
from clipspace.data.tokenizer import train_tokenizer
from clipspace.errors import DataError
from clipspace.eval import embed, encode_texts, evaluate, load_eval_dataset
from clipspace.eval.embed import Embeddings
from clipspace.eval.suites import SuiteContext, retrieval_suite
from tests.helpers.configs import TINY
from tests.helpers.runs import tiny_run

HIERARCAPS = Path(__file__).resolve().parents[3] / "shared" / "data" / "hierarcaps"
CAPTIONS = {"img0.png": ["a red square", "a square"], "img1.png": ["a blue circle"],
            "img2.png": ["a green line", "a line", "green"]}


def _dot_model() -> SimpleNamespace:
    return SimpleNamespace(similarity=lambda a, b: a @ b.T)


def test_hand_computed_any_caption_recall() -> None:
    """3 images, 6 captions (owners 0 0 1 2 2 2), dot-product scores; worked out by hand:
    i2t: image 0's best caption is its 2nd (hit), image 1's is its own, image 2 ranks image 1's
    caption first and its own 2nd -> R@1 = 2/3. t2i: captions 4 and 5 rank another image first
    -> R@1 = 4/6. Instance R@1 pairs each image with its first caption (rows 0, 2, 3)."""
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.2, 0.9]])
    txt = torch.tensor([[0.9, 0.0], [1.0, 0.05], [0.0, 1.0], [0.5, 0.6], [-1.0, 0.1],
                        [0.8, 0.1]])
    caps = ["t0", "t1", "t2", "t3", "t4", "t5"]
    emb = Embeddings(image=img, text=txt[[0, 2, 3]], captions=["t0", "t2", "t3"], labels={},
                     positions=np.arange(3), all_text=txt, text_image=np.array([0, 0, 1, 2, 2, 2]),
                     all_captions=caps)
    res = retrieval_suite(SuiteContext(model=_dot_model(), emb=emb, tokenizer=None))
    expected = {"i2t_r1": 2 / 3, "i2t_r5": 1.0, "i2t_r10": 1.0,
                "t2i_r1": 4 / 6, "t2i_r5": 1.0, "t2i_r10": 1.0,
                "instance_i2t_r1": 2 / 3, "instance_t2i_r1": 1.0}
    assert {k: res[k] for k in expected} == pytest.approx(expected)
    assert res["captions"] == 6 and res["unique_captions"] == 6
    # one-caption data keeps the equal-caption rule on the paired texts
    one = Embeddings(image=img, text=txt[[0, 2, 3]], captions=["x", "y", "x"], labels={},
                     positions=np.arange(3))
    res = retrieval_suite(SuiteContext(model=_dot_model(), emb=one, tokenizer=None))
    assert res["captions"] == 3 and res["unique_captions"] == 2


def _write_images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(CAPTIONS):
        arr = np.random.default_rng(k).integers(0, 255, (20, 24, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / name)


def _write_csv(path: Path, sep: str = "\t") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=sep)
        writer.writerow(["filepath", "title"])
        rows = [(f, c) for f, caps in CAPTIONS.items() for c in caps]
        writer.writerows(rows[1:] + rows[:1])  # img0's first row's caption comes last
    return path


def _tiny_model(preset: str = "clip", **over) -> torch.nn.Module:
    from clipspace.models import create_model

    torch.manual_seed(0)
    return create_model(preset, **{**TINY, **over}).eval()


def test_embed_fills_all_captions(tmp_path: Path) -> None:
    _write_images(tmp_path / "images")
    path = _write_csv(tmp_path / "caps.tsv")
    model = _tiny_model()
    tok = train_tokenizer([c for caps in CAPTIONS.values() for c in caps], vocab_size=300)
    ds = load_eval_dataset(f"csv:{path}::{tmp_path / 'images'}", model)
    assert isinstance(ds, CaptionedImages)
    emb = embed(model, ds, tok, batch_size=2, progress=False)
    # images in first-occurrence order; img0's caption on the last row joins its first one
    groups = [["a square", "a red square"], ["a blue circle"], ["a green line", "a line", "green"]]
    assert emb.captions == [g[0] for g in groups]
    assert emb.all_captions == [c for g in groups for c in g]
    assert emb.text_image.tolist() == [0, 0, 1, 2, 2, 2]
    direct = encode_texts(model, tok, emb.all_captions)
    assert torch.allclose(emb.all_text, direct, atol=1e-5)
    assert torch.equal(emb.text, emb.all_text[[0, 2, 3]])
    sub = embed(model, ds, tok, batch_size=2, progress=False, max_samples=2)
    kept = sub.positions.tolist()
    assert len(kept) == 2 and sub.all_captions == [c for i in kept for c in groups[i]]
    assert sub.text_image.tolist() == np.repeat([0, 1], [len(groups[i]) for i in kept]).tolist()


def test_eval_schemes_and_image_dir(tmp_path: Path) -> None:
    _write_images(tmp_path / "images")
    _write_csv(tmp_path / "images" / "caps.csv", sep=",")  # comma .csv, paths near the file
    ds = load_eval_dataset(f"csv:{tmp_path / 'images' / 'caps.csv'}")
    assert ds.captions()[0] == ["a square", "a red square"]
    coco = {"images": [{"id": k, "file_name": f} for k, f in enumerate(CAPTIONS)],
            "annotations": [{"image_id": k, "caption": c}
                            for k, caps in enumerate(CAPTIONS.values()) for c in caps]}
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    a = load_eval_dataset(f"coco:{tmp_path / 'ann.json'}", image_dir=str(tmp_path / "images"))
    b = load_eval_dataset(f"coco:{tmp_path / 'ann.json'}::{tmp_path / 'images'}")
    assert a.captions() == b.captions() == list(CAPTIONS.values())
    import webdataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        writer = webdataset.TarWriter(str(tmp_path / "shard-0.tar"))
    with writer:
        for k, (f, caps) in enumerate(CAPTIONS.items()):
            image = (tmp_path / "images" / f).read_bytes()
            writer.write({"__key__": f"k{k}", "png": image,
                          "json": json.dumps({"captions": caps}).encode()})
    ds = load_eval_dataset(f"wds:{tmp_path / 'shard-*.tar'}")
    assert ds.captions() == list(CAPTIONS.values())
    with pytest.raises(DataError, match="csv:, wds:, coco:"):
        load_eval_dataset(f"flickr:{tmp_path}")


def _hierarcaps_files(tmp: Path) -> tuple[Path, Path, Path, list[list[str]]]:
    """(CSV with 4 rows per image, COCO JSON, image folder, captions per image)."""
    from clipspace.data.hierarcaps import read_hierarcaps_test

    rows = read_hierarcaps_test(HIERARCAPS / "hierarcaps_test.csv", HIERARCAPS / "images")
    rows = [r for r in rows if r.image_path is not None]
    with open(tmp / "caps.tsv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t")
        writer.writerow(["filepath", "title"])
        writer.writerows((r.image_path.name, c) for r in rows for c in r.captions)
    coco = {"images": [{"id": int(r.id), "file_name": r.image_path.name} for r in rows],
            "annotations": [{"image_id": int(r.id), "caption": c}
                            for r in rows for c in r.captions]}
    (tmp / "captions.json").write_text(json.dumps(coco))
    return tmp / "caps.tsv", tmp / "captions.json", HIERARCAPS / "images", [r.captions
                                                                          for r in rows]


def _recall_bounds(sim: np.ndarray, match: np.ndarray, k: int, eps: float = 1e-5
                   ) -> tuple[float, float]:
    """Brute-force Recall@k of score rows ``sim`` (queries x gallery), ``match[q, g]`` marking
    a hit: (worst, best) over the order of items that tie (within ``eps``) with the query's best
    hit (identical caption strings of other images tie exactly)."""
    best = np.where(match, sim, -np.inf).max(1, keepdims=True)
    above = ((sim > best + eps) & ~match).sum(1)
    level = ((sim >= best - eps) & ~match).sum(1)
    return float(np.mean(level < k)), float(np.mean(above < k))


@pytest.mark.skipif(not HIERARCAPS.is_dir(), reason="needs /work/shared/data/hierarcaps")
@pytest.mark.parametrize(("fmt", "preset"), [("csv", "clip"), ("coco", "meru")])
def test_hierarcaps_any_caption_recall_brute_force(tmp_path: Path, fmt: str, preset: str) -> None:
    tsv, ann, images, captions = _hierarcaps_files(tmp_path)
    model = _tiny_model(preset, **{"model.text.context_length": 32})
    tok = train_tokenizer([c for caps in captions for c in caps], vocab_size=512,
                          context_length=32)
    spec = f"csv:{tsv}::{images}" if fmt == "csv" else f"coco:{ann}"
    ds = load_eval_dataset(spec, model, image_dir=str(images))
    emb = embed(model, ds, tok, batch_size=200, progress=False)
    res = evaluate(model, spec, ["retrieval"], tokenizer=tok, embeddings=emb)["retrieval"]
    # ground truth from the source file: image i owns captions[i], 4 each
    flat = [c for caps in captions for c in caps]
    owner = np.repeat(np.arange(len(captions)), 4)
    assert len(emb) == len(captions) == 1000 and res["captions"] == 4000
    assert emb.all_captions == flat and emb.text_image.tolist() == owner.tolist()
    assert torch.allclose(emb.all_text, encode_texts(model, tok, flat), atol=1e-5)
    with torch.no_grad():
        sim = model.similarity(emb.image, emb.all_text).numpy()
    match = owner[None, :] == np.arange(len(captions))[:, None]
    for k in (1, 5, 10):
        lo, hi = _recall_bounds(sim, match, k)
        assert lo - 1e-9 <= res[f"i2t_r{k}"] <= hi + 1e-9
        assert hi - lo <= 0.01
        lo, hi = _recall_bounds(sim.T, match.T, k)
        assert res[f"t2i_r{k}"] == pytest.approx(lo) == pytest.approx(hi)


def _saved_run(tmp_path: Path) -> tuple[Path, Path]:
    from clipspace.models.factory import save_pretrained

    run = save_pretrained(_tiny_model(), tmp_path / "run")
    tok = train_tokenizer([c for caps in CAPTIONS.values() for c in caps], vocab_size=300)
    return run, tok.save(tmp_path / "tokenizer.json")


def test_cli_eval_csv_retrieval_and_bad_input(tmp_path: Path, capsys) -> None:
    from clipspace.cli import main

    _write_images(tmp_path / "images")
    path = _write_csv(tmp_path / "images" / "caps.tsv")
    run, tok = _saved_run(tmp_path)
    base = ["eval", str(run), "--suite", "retrieval", "--tokenizer", str(tok), "--no-progress"]
    assert main([*base, "--data", f"csv:{path}"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 3 and res["retrieval"]["captions"] == 6
    assert {f"{d}_r{k}" for d in ("i2t", "t2i") for k in (1, 5, 10)} <= set(res["retrieval"])
    bad = tmp_path / "bad.tsv"
    bad.write_text("image\tcaption\nimg0.png\tx\n")
    assert main([*base, "--data", f"csv:{bad}"]) == 2
    assert "missing column" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"images": [}')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*base, "--data", f"coco:{tmp_path / 'bad.json'}"]) == 2
    assert "bad.json, line 1" in capsys.readouterr().err


def test_default_suites_skip_what_caption_data_cannot_support(tmp_path, tiny_mad) -> None:
    """hierarchy / zero-shot / linear probe report "skipped" on plain captioned images."""

    from PIL import Image

    from clipspace.eval import evaluate
    from clipspace.models import load_model_and_tokenizer

    (tmp_path / "img").mkdir()
    lines = ["filepath\ttitle"]
    for i in range(4):
        Image.new("RGB", (20, 20), (60 * i, 10, 10)).save(tmp_path / "img" / f"{i}.png")
        lines += [f"img/{i}.png\tred {i}", f"img/{i}.png\tdark {i}"]
    (tmp_path / "d.tsv").write_text("\n".join(lines) + "\n")
    run = tiny_run(tmp_path / "run", tiny_mad)
    model, tok = load_model_and_tokenizer(run)
    res = evaluate(model, f"csv:{tmp_path / 'd.tsv'}", tokenizer=tok, progress=False)
    assert res["n"] == 4 and 0 <= res["retrieval"]["i2t_r1"] <= 1
    for suite in ("zeroshot", "linear_probe", "hierarchy"):
        assert "skipped" in res[suite], suite
