"""Hugging Face CLIP checkpoints loaded by clipspace give transformers' own features."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.helpers.hf import TEXTS, make_tiny_hf_clip, random_image

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_hf_clip(tmp_path_factory.mktemp("hf") / "tiny-clip")


def _reference(hf_dir: Path):
    model = transformers.CLIPModel.from_pretrained(str(hf_dir)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(hf_dir))
    proc = transformers.CLIPImageProcessor.from_pretrained(str(hf_dir))
    return model, tok, proc


def test_create_model_matches_transformers_features(hf_dir: Path) -> None:
    from clipspace.models import create_model
    from clipspace.models.hf_clip import HFClipModel, get_hf_tokenizer

    ref, ref_tok, proc = _reference(hf_dir)
    model = create_model(pretrained=str(hf_dir)).eval()
    assert isinstance(model, HFClipModel)
    assert model.geometry.__name__.endswith("sphere")
    assert model.image_size == 32 and model.context_length == 16
    tok = get_hf_tokenizer(hf_dir)
    texts = TEXTS[:6]
    ids = ref_tok(texts, padding="max_length", max_length=16, return_tensors="pt")["input_ids"]
    assert torch.equal(tok(texts), ids)  # same ids, padded with the end token
    images = [random_image(40, 50, s) for s in range(3)]
    pix = proc(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        want_t = F.normalize(ref.get_text_features(input_ids=ids).pooler_output, dim=-1)
        want_i = F.normalize(ref.get_image_features(pixel_values=pix).pooler_output, dim=-1)
        got_t = model.encode_text(tok(texts))
        got_i = model.encode_image(pix)
    assert torch.allclose(got_t, want_t, atol=1e-5)
    assert torch.allclose(got_i, want_i, atol=1e-5)
    # tangent vectors on the sphere are the same unit vectors; to_points is the identity there
    with torch.no_grad():
        assert torch.allclose(model.to_points(model.encode_text(tok(texts), tangent=True)), got_t,
                              atol=1e-6)
    # logit scale from the checkpoint; similarity = cosine
    assert model.objective.logit_scale().item() == pytest.approx(ref.logit_scale.exp().item(),
                                                                 rel=1e-5)
    sim = model.similarity(got_i, got_t)
    assert torch.allclose(sim, got_i @ got_t.T, atol=1e-5)
    loss = model.compute_loss(got_i[:3], got_t[:3])["loss"]
    assert torch.isfinite(loss)


def test_preprocess_matches_image_processor(hf_dir: Path) -> None:
    from clipspace.models.hf_clip import load_pretrained

    _, _, proc = _reference(hf_dir)
    _, tok, preprocess = load_pretrained(hf_dir)
    assert tok is not None and tok.eot_id == tok.hf.eos_token_id
    for h, w in [(40, 50), (61, 33), (32, 32), (17, 20)]:
        img = random_image(h, w, seed=h * w)
        want = proc(images=img, return_tensors="pt")["pixel_values"][0]
        got = preprocess(img)
        assert got.shape == want.shape == (3, 32, 32)
        assert torch.allclose(got, want, atol=1e-4), float((got - want).abs().max())


def test_clipspace_get_tokenizer_reads_hf_dir(hf_dir: Path) -> None:
    """The eval CLI's tokenizer path (clipspace's own get_tokenizer on tokenizer.json) agrees."""
    from clipspace.data.tokenizer import get_tokenizer
    from clipspace.models.hf_clip import get_hf_tokenizer

    a = get_tokenizer(hf_dir, context_length=16)
    b = get_hf_tokenizer(hf_dir)
    assert torch.equal(a(TEXTS), b(TEXTS))
    long = " ".join(["a small brown dog"] * 10)
    row = b(long)[0]
    assert row[-1].item() == b.eot_id and row[0].item() == b.sot_id
    assert b.decode(b("a red car")[0]) == "a red car"


def test_save_hf_roundtrip_and_finetuned_weights(hf_dir: Path, tmp_path: Path) -> None:
    from clipspace.models import create_model
    from clipspace.models.hf_clip import get_hf_tokenizer, save_hf

    model = create_model(pretrained=str(hf_dir)).eval()
    with torch.no_grad():
        model.text_proj.weight.mul_(1.5).add_(0.01)  # make it differ from the source
    out = save_hf(model, tmp_path / "exported")
    again = transformers.CLIPModel.from_pretrained(str(out)).eval()
    tok = get_hf_tokenizer(out)
    ids = tok(TEXTS[:4])
    with torch.no_grad():
        want = model.encode_text(ids)
        got = F.normalize(again.get_text_features(input_ids=ids).pooler_output, dim=-1)
    assert torch.allclose(got, want, atol=1e-5)
    reloaded = create_model(pretrained=str(out)).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded.encode_text(ids), want, atol=1e-5)


def test_not_an_hf_dir_is_a_clean_error(tmp_path: Path) -> None:
    from clipspace.errors import ClipspaceError
    from clipspace.models.hf_clip import is_hf_clip_dir, load_hf_clip

    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    assert not is_hf_clip_dir(tmp_path)
    with pytest.raises(ClipspaceError):
        load_hf_clip(tmp_path)
    clip_dir = tmp_path / "noweights"
    clip_dir.mkdir()
    (clip_dir / "config.json").write_text('{"model_type": "clip"}')
    with pytest.raises(ClipspaceError, match="no model.safetensors"):
        load_hf_clip(clip_dir)
