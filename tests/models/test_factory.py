"""create_model: config sources, overrides, pretrained checkpoints and the loader hook."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clipspace.checkpoint import find_weights
from clipspace.config import ConfigError, resolve, save
from clipspace.errors import ClipspaceError
from clipspace.models import (
    ClipModel,
    create_model,
    factory,
    register_pretrained_loader,
    save_pretrained,
    save_weights,
)

TINY = {
    "model.name": "custom",
    "model.embed_dim": 16,
    "model.image.width": 8,
    "model.image.depth": 2,
    "model.text.width": 16,
    "model.text.depth": 1,
}


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(3, 1000, (3, 16), generator=g)
    tokens[:, 6] = 2
    return torch.randn(3, 3, 28, 28, generator=g), tokens


def _outputs(model: ClipModel) -> tuple[torch.Tensor, torch.Tensor]:
    images, tokens = _batch()
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tokens)


def test_config_sources() -> None:
    assert create_model(**TINY).config.preset == "clip"
    meru = create_model("meru", **TINY)
    assert meru.config.geometry.name == "lorentz" and meru.objective.entail_weight == 0.2
    cfg = resolve("euclip", TINY)
    m = create_model(cfg, **{"loss.entail_weight": 0.3})
    assert m.config.loss.entail_weight == 0.3 and cfg.loss.entail_weight == 0.0
    assert create_model("atmg", model__name="custom", model__embed_dim=8).embed_dim == 8
    with pytest.raises(ConfigError, match="unknown preset"):
        create_model("hyperclip")
    with pytest.raises(ConfigError, match="model.image.widht"):
        create_model("clip", **{"model.image.widht": 3})
    with pytest.raises(ConfigError, match="model.name"):
        create_model("clip", **{"model.name": "nope"})


def test_named_config_expanded_in_model_config() -> None:
    model = create_model("clip", **{"model.name": "mad-tiny"})
    assert model.config.model.image.width == 32  # the mad-tiny value, recorded for saving
    assert model.visual.output_dim == 128 and model.image_size == 28 and model.context_length == 16


def _run_dir(tmp_path: Path, model: ClipModel) -> Path:
    """The training layout: <run>/config.json + <run>/checkpoints/step_N/model.safetensors."""
    run = tmp_path / "run"
    save(model.config, run / "config.json")
    for step in (5, 10):
        save_weights(model, run / "checkpoints" / f"step_{step}" / "model.safetensors")
    # an older step with different weights must not be picked
    torch.manual_seed(123)
    other = create_model(model.config)
    save_weights(other, run / "checkpoints" / "step_5" / "model.safetensors")
    return run


@pytest.mark.parametrize("preset", ["clip", "meru"])
def test_pretrained_roundtrip(tmp_path: Path, preset: str) -> None:
    torch.manual_seed(0)
    model = create_model(preset, **TINY)
    with torch.no_grad():  # move the learnable scalars off their init so they must be loaded
        model.curvature.log_value.add_(0.3)
        model.objective.logit_scale.log_value.sub_(0.5)
    ref = _outputs(model)
    run = _run_dir(tmp_path, model)
    for path in (
        run,
        run / "checkpoints" / "step_10",
        run / "checkpoints" / "step_10" / "model.safetensors",
    ):
        loaded = create_model(pretrained=str(path))
        out = _outputs(loaded)
        assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1]), path
        assert loaded.config.geometry.name == model.config.geometry.name
        assert torch.equal(loaded.curv(), model.curv())
    older = create_model(pretrained=str(run / "checkpoints" / "step_5"))
    assert not torch.equal(_outputs(older)[0], ref[0])


def test_save_pretrained_and_explicit_config(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("euclip", eot_id=5, **TINY)
    out_dir = save_pretrained(model, tmp_path / "export")
    assert (out_dir / "model.safetensors").is_file() and (out_dir / "config.json").is_file()
    loaded = create_model(pretrained=str(out_dir))
    assert loaded.eot_id == 5  # pooling ids travel in the safetensors metadata
    assert torch.equal(_outputs(loaded)[1], _outputs(model)[1])
    # explicit config + pretrained: the config's loss may differ, the towers must fit
    cfg = resolve("euclip", {**TINY, "loss.entail_weight": 0.2})
    loaded2 = create_model(cfg, pretrained=str(out_dir))
    assert loaded2.objective.entail_weight == 0.2
    assert torch.equal(_outputs(loaded2)[0], _outputs(model)[0])
    # config.model.pretrained is honoured too
    cfg.model.pretrained = str(out_dir / "model.safetensors")
    assert torch.equal(_outputs(create_model(cfg))[0], _outputs(model)[0])


def test_pretrained_errors(tmp_path: Path) -> None:
    with pytest.raises(ClipspaceError, match="not found"):
        create_model(pretrained=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClipspaceError, match="not a clipspace run"):
        find_weights(tmp_path / "empty")
    torch.manual_seed(0)
    small = create_model("clip", **TINY)
    save_pretrained(small, tmp_path / "small")
    bigger = resolve("clip", {**TINY, "model.text.width": 32})
    with pytest.raises(ClipspaceError, match="do not fit"):
        create_model(bigger, pretrained=str(tmp_path / "small"))
    (tmp_path / "nocfg").mkdir()
    save_weights(small, tmp_path / "nocfg" / "model.safetensors")
    with pytest.raises(ClipspaceError, match="config.json"):
        create_model(pretrained=str(tmp_path / "nocfg"))


def test_register_pretrained_loader_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "PRETRAINED_LOADERS", [])
    seen: list[Path] = []

    def loader(path: Path) -> ClipModel:
        seen.append(path)
        return create_model("clip", **TINY)

    hf_dir = tmp_path / "hf-clip"
    hf_dir.mkdir()
    register_pretrained_loader(lambda p: p.name.startswith("hf-"), loader)
    model = create_model(pretrained=str(hf_dir))
    assert isinstance(model, ClipModel) and seen == [hf_dir]


def test_training_checkpoints_carry_pooling_ids(tmp_path: Path) -> None:
    """One writer: a checkpoint saved by training holds the eot/pad ids create_model reads."""
    from clipspace import checkpoint as ck

    model = create_model("clip", eot_id=5, pad_id=1, **TINY)
    save(model.config, tmp_path / "config.json")
    ck.save_checkpoint(tmp_path, 3, model, {}, keep_last=0)
    loaded = create_model(pretrained=str(tmp_path))
    assert (loaded.eot_id, loaded.pad_id) == (5, 1)
