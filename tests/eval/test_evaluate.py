"""evaluate() end to end on a tiny MAD directory with real (untrained) models."""

import json

import numpy as np
import pytest
import torch

models = pytest.importorskip("clipspace.models")
pytest.importorskip("clipspace.data.mad")

from clipspace.data.embeddings_io import read_arrays  # noqa: E402
from clipspace.data.tokenizer import get_tokenizer  # noqa: E402
from clipspace.eval import (  # noqa: E402
    embed,
    encode_texts,
    evaluate,
    load_eval_dataset,
    save_embeddings,
)
from clipspace.eval.retrieval import caption_groups, recall_at_k  # noqa: E402
from tests.helpers.mad import TINY_MAD_TEST_IMAGES  # noqa: E402


def test_evaluate_all_suites(tiny_mad) -> None:
    torch.manual_seed(0)
    model = models.create_model("meru")
    res = evaluate(model, f"mad:{tiny_mad}", batch_size=8, progress=False,
                   probe_keys=("digit",))
    json.dumps(res)  # JSON-serialisable
    assert res["n"] == TINY_MAD_TEST_IMAGES
    zs = res["zeroshot"]
    assert set(zs) >= {"digit", "colour", "stroke", "mean_top1"}
    assert all(0.0 <= zs[k]["top1"] <= 1.0 for k in ("digit", "colour"))
    r = res["retrieval"]
    assert 0.0 <= r["i2t_r1"] <= r["i2t_r5"] <= r["i2t_r10"] <= 1.0
    assert r["i2t_r1"] >= r["instance_i2t_r1"]
    assert 0 <= res["linear_probe"]["digit"]["accuracy"] <= 1
    h = res["hierarchy"]
    assert 0 <= h["precision"] <= 1 and 0 <= h["recall"] <= 1 and -1 <= h["tau_d"] <= 1
    assert h["candidates"] <= 4 * TINY_MAD_TEST_IMAGES and len(h["traversals"]) == 3
    assert len(h["root_dist_by_level"]) == 4


def test_evaluate_sphere_hierarchy(tiny_mad) -> None:
    torch.manual_seed(0)
    model = models.create_model("clip")
    res = evaluate(model, f"mad:{tiny_mad}", suites=["hierarchy"], batch_size=8, progress=False)
    h = res["hierarchy"]
    assert 0 <= h["recall"] <= 1 and h["traversals"][0]["path"]


def test_save_embeddings_consistent_with_evaluate(tiny_mad, tmp_path) -> None:
    torch.manual_seed(0)
    model = models.create_model("clip")
    model.eval()
    ds = load_eval_dataset(f"mad:{tiny_mad}", model)
    emb = embed(model, ds, get_tokenizer(tiny_mad), batch_size=8, progress=False)
    out = save_embeddings(emb, tmp_path / "emb.npz")
    arr = read_arrays(out)
    assert arr["image"].shape == (TINY_MAD_TEST_IMAGES, arr["text"].shape[1])
    assert set(arr) >= {"digit", "colour", "caption_id", "caption_words"}
    res = evaluate(model, f"mad:{tiny_mad}", suites=["retrieval"], batch_size=8, progress=False)
    ids = arr["caption_id"]
    again = recall_at_k(torch.from_numpy(arr["image"]), torch.from_numpy(arr["text"]),
                        score_fn=model.similarity, img_groups=ids, txt_groups=ids)
    for k in ("i2t_r1", "t2i_r5"):
        assert again[k] == pytest.approx(res["retrieval"][k])
    assert np.array_equal(caption_groups(["a", "b", "a"])[0], [0, 1, 0])


def test_evaluate_rejects_bad_suite_and_spec(tiny_mad) -> None:
    from clipspace.errors import DataError

    model = models.create_model("clip")
    with pytest.raises(DataError):
        evaluate(model, f"mad:{tiny_mad}", suites=["nope"], progress=False)
    with pytest.raises(DataError):
        evaluate(model, "foo", progress=False)


def test_hierarchy_root_empty_uses_empty_caption(tiny_mad) -> None:
    """root="empty" measures radii from the embedding of "" (Radial Embedding's root)."""
    from clipspace.data.tokenizer import get_tokenizer

    torch.manual_seed(0)
    model = models.create_model("clip")
    tok = get_tokenizer(tiny_mad)
    default = evaluate(model, f"mad:{tiny_mad}", suites=["hierarchy"], batch_size=8,
                       progress=False)["hierarchy"]
    empty = evaluate(model, f"mad:{tiny_mad}", suites=["hierarchy"], batch_size=8,
                     progress=False, hierarchy_root="empty")["hierarchy"]
    assert default["root"] == "default" and empty["root"] == "empty"
    root = encode_texts(model, tok, [""], 8, "cpu")[0]
    img = model.encode_image(torch.zeros(1, 3, 28, 28))
    # mean image radius is reported against the chosen root
    assert empty["root_dist_image_mean"] != pytest.approx(default["root_dist_image_mean"])
    assert root.shape == img.shape[1:]
    with pytest.raises(Exception, match="hierarchy_root"):
        evaluate(model, f"mad:{tiny_mad}", suites=["hierarchy"], hierarchy_root="mean")


def test_mad_images_fit_any_model_input(tiny_mad, tmp_path) -> None:
    """MAD's 28x28 images reach a larger tower resized, and a pretrained checkpoint through its
    own preprocessing."""
    from tests.helpers.hf import make_tiny_hf_siglip

    big = models.create_model("clip", **{"model.image.image_size": 56})
    assert load_eval_dataset(f"mad:{tiny_mad}", big)[0]["image"].shape == (3, 56, 56)
    hf = models.create_model(pretrained=str(make_tiny_hf_siglip(tmp_path / "s", image_size=32)))
    item = load_eval_dataset(f"mad:{tiny_mad}", hf)[0]
    assert item["image"].shape == (3, 32, 32)
    assert load_eval_dataset(f"mad:{tiny_mad}", models.create_model("clip"))[0][
        "image"].shape == (3, 28, 28)
