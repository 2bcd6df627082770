"""Hugging Face SigLIP / SigLIP 2 checkpoints loaded by clipspace give transformers' own
features, logits, loss, token ids and pixels (within 1e-5)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.helpers.hf import TEXTS, make_tiny_hf_clip, make_tiny_hf_siglip, random_image

transformers = pytest.importorskip("transformers")

KINDS = ("siglip", "siglip2")
LONG = " ".join(["a small brown dog"] * 12)  # longer than the 16 positions
ATOL = 1e-5


@pytest.fixture(scope="module", params=KINDS)
def siglip_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_hf_siglip(tmp_path_factory.mktemp("hf") / f"tiny-{request.param}",
                               request.param)


def _kind(directory: Path) -> str:
    return json.loads((directory / "config.json").read_text())["model_type"]


def _reference(directory: Path):
    model = transformers.AutoModel.from_pretrained(str(directory)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(directory))
    proc = transformers.AutoImageProcessor.from_pretrained(str(directory))
    return model, tok, proc


def _hf_ids(tok, texts: list[str]) -> torch.Tensor:
    """What the SigLIP processors feed the model: padding="max_length" (and truncation)."""
    return tok(texts, padding="max_length", truncation=True, max_length=16,
               return_tensors="pt")["input_ids"]


def test_features_logits_and_loss_match_transformers(siglip_dir: Path) -> None:
    from clipspace.models import create_model
    from clipspace.models.hf_siglip import HFSiglipModel

    ref, ref_tok, proc = _reference(siglip_dir)
    model = create_model(pretrained=str(siglip_dir)).eval()
    assert isinstance(model, HFSiglipModel)
    assert model.geometry.__name__.endswith("sphere")
    assert model.image_size == 32 and model.context_length == 16 and model.embed_dim == 32
    loss_cfg = model.config.loss
    assert loss_cfg.contrastive == "siglip"
    assert loss_cfg.logit_scale == pytest.approx(math.exp(2.3), rel=1e-6)
    assert loss_cfg.siglip_bias == pytest.approx(-3.0)
    texts = [*TEXTS[:5], LONG, ""]
    ids = _hf_ids(ref_tok, texts)
    assert torch.equal(model.tokenizer(texts), ids)
    inputs = proc(images=[random_image(40, 40, s) for s in range(len(texts))],
                  return_tensors="pt")
    images = torch.stack([model.preprocess(random_image(40, 40, s)) for s in range(len(texts))])
    with torch.no_grad():
        want_t = F.normalize(ref.get_text_features(input_ids=ids).pooler_output, dim=-1)
        want_i = F.normalize(ref.get_image_features(**inputs).pooler_output, dim=-1)
        got_t, got_i = model.encode_text(ids), model.encode_image(images)
        out = ref(input_ids=ids, return_loss=True, **inputs)
        sim = model.similarity(got_i, got_t)
        loss = model.compute_loss(got_i, got_t)["loss"]
    assert torch.allclose(got_t, want_t, atol=ATOL)
    assert torch.allclose(got_i, want_i, atol=ATOL)
    # SigLIP scores with its sigmoid logit and bias: logit_scale.exp() * cos + logit_bias
    assert torch.allclose(sim, out.logits_per_image, atol=ATOL)
    assert loss.item() == pytest.approx(out.loss.item(), abs=ATOL)
    assert model.objective.logit_scale().item() == pytest.approx(ref.logit_scale.exp().item(),
                                                                 rel=1e-6)
    # the sphere: tangent vectors are the points
    with torch.no_grad():
        assert torch.allclose(model.encode_text(ids, tangent=True), got_t, atol=1e-6)


def test_preprocess_matches_image_processor(siglip_dir: Path) -> None:
    from clipspace.models import create_model

    _, _, proc = _reference(siglip_dir)
    model = create_model(pretrained=str(siglip_dir))
    if _kind(siglip_dir) == "siglip":  # exact (h, w) resize, no crop
        for h, w in [(40, 50), (61, 33), (32, 32), (17, 20)]:
            img = random_image(h, w, seed=h * w)
            want = proc(images=img, return_tensors="pt")["pixel_values"][0]
            got = model.preprocess(img)
            assert got.shape == want.shape == (3, 32, 32)
            assert torch.allclose(got, want, atol=ATOL), float((got - want).abs().max())
        return
    # SigLIP 2 NaFlex: square images give the fixed square, patch for patch
    for side in (40, 17, 32, 100):
        img = random_image(side, side, seed=side)
        want = proc(images=img, return_tensors="pt")
        got = model.preprocess(img)
        assert got.shape == (3, 32, 32)
        patches, mask, shapes = model.visual.patchify(got[None])
        assert torch.equal(shapes, want["spatial_shapes"])
        assert torch.equal(mask.bool(), want["pixel_attention_mask"].bool())
        assert torch.allclose(patches, want["pixel_values"], atol=ATOL)
    # a non-square image: preprocess stretches it to the square (the documented restriction)
    assert model.preprocess(random_image(40, 64)).shape == (3, 32, 32)


def test_siglip2_tower_takes_any_naflex_size(tmp_path: Path) -> None:
    """The vision tower on the processor's aspect-preserving (unpadded) size equals
    transformers' features of the padded patches."""
    from clipspace.errors import ClipspaceError
    from clipspace.models import create_model

    directory = make_tiny_hf_siglip(tmp_path / "s2", "siglip2")
    ref, _, proc = _reference(directory)
    model = create_model(pretrained=str(directory)).eval()
    img = random_image(40, 90, seed=3)
    inputs = proc(images=img, return_tensors="pt")
    gh, gw = (int(x) for x in inputs["spatial_shapes"][0])
    assert (gh, gw) != (4, 4) and inputs["pixel_attention_mask"][0].sum() < 16  # padded
    p = model.visual.patch_size
    patches = inputs["pixel_values"][0, : gh * gw].reshape(gh, gw, p, p, 3)
    image = patches.permute(4, 0, 2, 1, 3).reshape(1, 3, gh * p, gw * p)
    with torch.no_grad():
        want = F.normalize(ref.get_image_features(**inputs).pooler_output, dim=-1)
        got = model.encode_image(image)
    assert torch.allclose(got, want, atol=ATOL)
    with pytest.raises(ClipspaceError, match="multiples of the patch size"):
        model.encode_image(torch.zeros(1, 3, 30, 32))


def test_get_tokenizer_gives_transformers_ids(siglip_dir: Path) -> None:
    import clipspace
    from clipspace.data.hf_tokenizer import HFTokenizer
    from clipspace.models import load_model_and_tokenizer
    from clipspace.models.hf_clip import HFTokenizer as ReExported

    assert ReExported is HFTokenizer
    _, ref_tok, _ = _reference(siglip_dir)
    texts = [*TEXTS, LONG, "A Small DOG!"]
    want = _hf_ids(ref_tok, texts)
    for source in (siglip_dir, siglip_dir / "tokenizer.json"):
        tok = clipspace.get_tokenizer(source)
        assert isinstance(tok, HFTokenizer) and tok.context_length == 16
        assert torch.equal(tok(texts), want)
    tok = clipspace.get_tokenizer(siglip_dir)
    assert tok.encode("a dog") == ref_tok("a dog")["input_ids"]
    assert tok.decode(tok("a red car")[0]) == ref_tok.decode(ref_tok("a red car")["input_ids"],
                                                             skip_special_tokens=True)
    assert tok([]).shape == (0, 16)
    model, tok2 = load_model_and_tokenizer(siglip_dir)
    assert tok2 is model.tokenizer and torch.equal(tok2(texts), want)


def test_hf_tokenizer_saves_into_a_folder(siglip_dir: Path, tmp_path: Path) -> None:
    """``save(run / "tokenizer.json")`` (what training writes) saves transformers' files into
    the run folder, and ``get_tokenizer(run)`` reads them back with the same ids."""
    from clipspace.data.tokenizer import get_tokenizer

    tok = get_tokenizer(siglip_dir)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"model": {"name": "custom"}}')  # a clipspace config
    assert tok.save(run / "tokenizer.json") == run
    again = get_tokenizer(run, context_length=16)
    assert torch.equal(again(TEXTS), tok(TEXTS))


def test_export_and_reload_from_hf_base(siglip_dir: Path, tmp_path: Path) -> None:
    """``save_hf`` writes a directory transformers loads with the same features, logit scale and
    bias; a run holding ``hf_base`` plus clipspace weights loads those weights."""
    from clipspace.checkpoint import write_weights
    from clipspace.models import create_model
    from clipspace.models.hf_clip import copy_side_files, save_hf

    model = create_model(pretrained=str(siglip_dir)).eval()
    with torch.no_grad():
        model.text.model.head.weight.mul_(1.5).add_(0.01)  # make it differ from the source
        model.objective.siglip_bias.fill_(-2.5)
    ids = model.tokenizer(TEXTS[:4])
    with torch.no_grad():
        want = model.encode_text(ids)
    out = save_hf(model, tmp_path / "exported")
    again = transformers.AutoModel.from_pretrained(str(out)).eval()
    assert again.logit_bias.item() == pytest.approx(-2.5)
    with torch.no_grad():
        got = F.normalize(again.get_text_features(input_ids=ids).pooler_output, dim=-1)
    assert torch.allclose(got, want, atol=ATOL)
    run = tmp_path / "run"
    copy_side_files(siglip_dir, run / "hf_base")
    write_weights(model, run / "model.safetensors")
    reloaded = create_model(pretrained=str(run)).eval()
    assert reloaded.objective.siglip_bias.item() == pytest.approx(-2.5)
    with torch.no_grad():
        assert torch.allclose(reloaded.encode_text(ids), want, atol=ATOL)


def test_bad_directories_are_clean_errors(siglip_dir: Path, tmp_path: Path) -> None:
    from clipspace.errors import ClipspaceError
    from clipspace.models import create_model
    from clipspace.models.hf_clip import copy_side_files, is_hf_clip_dir
    from clipspace.models.hf_siglip import is_hf_siglip_dir, load_hf_siglip

    assert is_hf_siglip_dir(siglip_dir) and not is_hf_clip_dir(siglip_dir)
    no_weights = copy_side_files(siglip_dir, tmp_path / "noweights")
    with pytest.raises(ClipspaceError, match="no model.safetensors"):
        create_model(pretrained=str(no_weights))
    broken = copy_side_files(siglip_dir, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ClipspaceError, match="broken.model.safetensors"):
        create_model(pretrained=str(broken))
    clip = make_tiny_hf_clip(tmp_path / "clip")
    with pytest.raises(ClipspaceError, match="not a Hugging Face SigLIP directory"):
        load_hf_siglip(clip)


def test_sentencepiece_tokenizer_without_sentencepiece(siglip_dir: Path, tmp_path: Path) -> None:
    """A real SigLIP directory's ``SiglipTokenizer`` (spiece.model) needs sentencepiece: without
    it, loading says so instead of falling back to another tokenizer."""
    import importlib.util
    import shutil

    from clipspace.errors import ClipspaceError
    from clipspace.models import create_model

    if importlib.util.find_spec("sentencepiece") is not None or _kind(siglip_dir) != "siglip":
        pytest.skip("sentencepiece is installed / SigLIP 2 uses a tokenizers-only tokenizer")
    d = shutil.copytree(siglip_dir, tmp_path / "spm")
    (d / "tokenizer.json").unlink()
    (d / "tokenizer_config.json").write_text('{"tokenizer_class": "SiglipTokenizer"}')
    (d / "spiece.model").write_bytes(b"not a model")
    with pytest.raises(ClipspaceError, match="pip install sentencepiece"):
        create_model(pretrained=str(d))


def test_cli_eval_runs_on_a_siglip_dir(
    tiny_mad: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``clipspace eval DIR --data mad:...``: the SigLIP's own tokenizer; 28x28 MAD images fit a
    tiny SigLIP of image size 28 (SigLIP 2: 16 patches of 7)."""
    from clipspace.cli import main

    for kind in KINDS:
        directory = make_tiny_hf_siglip(tmp_path / kind, kind, image_size=28, patch_size=7)
        out = tmp_path / f"{kind}.json"
        code = main(["eval", str(directory), "--data", f"mad:{tiny_mad}", "--suite",
                     "zeroshot,retrieval", "--batch-size", "32", "--no-progress",
                     "--out", str(out)])
        assert code == 0
        res = json.loads(out.read_text())
        assert res == json.loads(capsys.readouterr().out)  # printed and written alike
        assert {"zeroshot", "retrieval"} <= set(res) and res["n"] > 0
