"""Adapting a pretrained transformers CLIP into another geometry with the training engine:
only adapters, projections and geometry parameters change; checkpoints hold only those; a
resumed adaptation ends bit-identical; ``finetune geometry`` and ``export --merge`` from the
command line, the merged model equal to the adapted one, the retention report, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from clipspace import config as C
from clipspace.cli import main
from clipspace.config import ConfigError
from clipspace.errors import ClipspaceError
from clipspace.models import create_model, load_model_and_tokenizer
from clipspace.train import train
from tests.helpers.configs import tiny_config

pytest.importorskip("transformers")
pytest.importorskip("peft")


def _config(mad: Path, out: Path, base: Path, name: str, preset: str = "meru", **over):
    return tiny_config(preset, mad, out, name, **{"adapt.base": str(base), "adapt.lora_r": 4,
                                                  "data.batch_size": 16, "optim.steps": 4,
                                                  "optim.lr": 1e-2, **over})


def _crash_at(step: int):
    def hook(model, at, run_dir):
        if at == step:
            raise RuntimeError("simulated crash")
        return {}
    return hook


def test_only_adapters_projections_and_geometry_change(
        tiny_mad: Path, finetune_hf_clip: Path, tmp_path: Path) -> None:
    run = train(_config(tiny_mad, tmp_path, finetune_hf_clip, "lora"))
    base = create_model(pretrained=str(finetune_hf_clip)).state_dict()
    tuned = create_model(pretrained=str(run))
    assert tuned.config.geometry.name == "lorentz"
    state = tuned.state_dict()
    for name, value in state.items():
        plain = name.replace(".base_layer", "")
        if ".lora_" in name or not name.startswith(("visual.", "text.")):
            continue
        assert torch.equal(value, base[plain]), name  # frozen tower weights: the base's
    lora_b = [v for k, v in state.items() if ".lora_B." in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # adapters trained (B starts at 0)
    assert not torch.equal(state["image_proj.weight"], base["image_proj.weight"])
    # the checkpoint holds what trains (no frozen tower weight), marked partial
    weights = run / "checkpoints" / "step_4" / "model.safetensors"
    saved = load_file(str(weights))
    assert not any(".base_layer." in k for k in saved)
    assert {k for k, p in tuned.named_parameters() if p.requires_grad} <= set(saved)
    with safe_open(str(weights), framework="pt") as fh:
        assert fh.metadata()["partial"] == "1"
    assert sum(v.numel() for v in saved.values()) < 0.5 * sum(v.numel() for v in base.values())


def test_resumed_adaptation_is_bit_identical(
        tiny_mad: Path, finetune_hf_clip: Path, tmp_path: Path) -> None:
    common = {"optim.steps": 6, "run.save_every": 2, "run.eval_every": 1}
    ref = train(_config(tiny_mad, tmp_path, finetune_hf_clip, "ref", **common),
                hooks=[_crash_at(-1)])
    cfg = _config(tiny_mad, tmp_path, finetune_hf_clip, "crash", **common)
    with pytest.raises(RuntimeError, match="simulated"):
        train(cfg, hooks=[_crash_at(3)])
    run = train(cfg, resume="latest", hooks=[_crash_at(-1)])
    a = load_file(str(ref / "checkpoints" / "step_6" / "model.safetensors"))
    b = load_file(str(run / "checkpoints" / "step_6" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _encode(source: Path, images: torch.Tensor, texts: list[str]):
    model, tok = load_model_and_tokenizer(source)
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tok(texts))


def test_cli_adapt_merge_and_retention(
        tiny_mad: Path, finetune_hf_clip: Path, tmp_path: Path, capsys) -> None:
    args = ["finetune", "geometry", "--model", str(finetune_hf_clip), "--preset", "clip",
            "--data", f"mad:{tiny_mad}", "--output-dir", str(tmp_path), "--name", "adapt",
            "--steps", "3", "--batch-size", "16", "--lr", "1e-2", "--lora-r", "4",
            "--eval-data", f"mad:{tiny_mad}", "--eval-samples", "64", "--no-progress",
            "--set", "run.threads=1", "--set", "run.tensorboard=false"]
    assert main(args) == 0
    run = tmp_path / "adapt"
    report = json.loads((run / "retention.json").read_text())
    assert report["compare"]["retrieval.i2t_r1"]["before"] == report["before"]["retrieval"][
        "i2t_r1"]
    assert "zeroshot" in report["after"]
    printed = capsys.readouterr()
    assert "metric" in printed.out and "parameters train" in printed.err
    out = tmp_path / "merged"
    assert main(["export", str(run), "--merge", "--out", str(out)]) == 0
    images, texts = torch.rand(2, 3, 32, 32), ["a red 3", "a thin 7"]
    adapted = _encode(run, images, texts)
    merged = _encode(out, images, texts)
    for a, m in zip(adapted, merged, strict=True):
        torch.testing.assert_close(m, a, atol=1e-5, rtol=1e-5)
    # a sphere preset: out/hf is a transformers CLIP that transformers loads by itself
    import transformers

    hf = transformers.CLIPModel.from_pretrained(str(out / "hf")).eval()
    with torch.no_grad():
        feats = hf.get_image_features(pixel_values=images)
        feats = getattr(feats, "pooler_output", feats)
    torch.testing.assert_close(torch.nn.functional.normalize(feats, dim=-1), adapted[0],
                               atol=1e-5, rtol=1e-5)
    assert main(["export", str(run), "--merge", "--out", str(out)]) == 2  # no overwrite


def test_missing_base_and_fsdp_are_named(tiny_mad: Path, finetune_hf_clip: Path,
                                         tmp_path: Path) -> None:
    cfg = _config(tiny_mad, tmp_path, finetune_hf_clip, "fsdp", **{"run.parallel": "fsdp"})
    with pytest.raises(ConfigError, match="run.parallel"):
        train(cfg)
    cfg = _config(tiny_mad, tmp_path, tmp_path / "nowhere", "gone")
    with pytest.raises(ConfigError, match="adapt.base"):
        train(cfg)
    # a finished adaptation whose base was deleted: loading it names the key
    run = tmp_path / "copy"
    step = run / "checkpoints" / "step_1"
    step.mkdir(parents=True)
    saved = C.to_dict(_config(tiny_mad, tmp_path, tmp_path / "nowhere", "x"))
    (run / "config.json").write_text(json.dumps(saved))
    save_file({"x": torch.zeros(1)}, str(step / "model.safetensors"))
    with pytest.raises(ClipspaceError, match="adapt.base.*gone"):
        create_model(pretrained=str(run))


@pytest.mark.parametrize("extra,needle", [
    (["--lora-r", "4", "--unlock", "text"], "adapt.unlock"),
    (["--lora-targets", "no_such_layer"], "adapt.lora_targets"),
    ([], "--preset"),
])
def test_cli_bad_adaptation_exits_2(tiny_mad: Path, finetune_hf_clip: Path, tmp_path: Path,
                                    capsys, extra: list[str], needle: str) -> None:
    preset = [] if needle == "--preset" else ["--preset", "meru"]
    args = ["finetune", "geometry", "--model", str(finetune_hf_clip), *preset,
            "--data", f"mad:{tiny_mad}", "--output-dir", str(tmp_path), "--steps", "1",
            "--no-progress", *extra]
    assert main(args) == 2
    assert needle in capsys.readouterr().err
