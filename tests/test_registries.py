"""Registries own the names: config validation reads them, and adding an entry is enough."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clipspace import eval as E
from clipspace.config import ConfigError, choices, resolve
from clipspace.config.presets import FINETUNE_PRESETS
from clipspace.geometry import GEOMETRIES
from clipspace.geometry.scalars import EMBED_SCALES
from clipspace.losses import CONTRASTIVE_KINDS, LOGIT_KINDS
from clipspace.models import IMAGE_TOWERS, create_model, register_image_tower


def test_config_choices_come_from_the_registries() -> None:
    c = choices()
    assert c["geometry.name"] == tuple(GEOMETRIES)
    assert c["geometry.embed_scale"] == tuple(EMBED_SCALES)
    assert c["loss.logit"] == tuple(LOGIT_KINDS)
    assert c["loss.contrastive"] == tuple(CONTRASTIVE_KINDS)
    assert c["finetune.method"] == tuple(FINETUNE_PRESETS)
    with pytest.raises(ConfigError, match="geometry.name.*'sphere'.*'lorentz'"):
        resolve("clip", {"geometry.name": "poincare"})


def test_sphere_rule_is_one_rule() -> None:
    """The config and the Objective reject the same combinations with the same reason."""
    from clipspace.geometry import sphere
    from clipspace.losses import Objective

    with pytest.raises(ConfigError, match="loss.entail_weight.*origin"):
        resolve("clip", {"loss.entail_weight": 0.1})
    with pytest.raises(ValueError, match="loss.entail_weight.*origin"):
        Objective(sphere, entail_weight=0.1)


class Flat(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.output_dim = width
        self.fc = nn.Linear(3 * 28 * 28, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_registered_image_tower_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(IMAGE_TOWERS, "flat", lambda cfg: Flat(cfg.width))
    with pytest.raises(ConfigError, match="model.image.kind.*convnet"):
        create_model("clip", **{"model.image.kind": "mlp"})
    register_image_tower("flat", lambda cfg: Flat(cfg.width))
    model = create_model("clip", **{"model.name": "custom", "model.image.kind": "flat"})
    assert model.encode_image(torch.randn(2, 3, 28, 28)).shape == (2, 128)


def test_registered_suite_runs_on_the_shared_embeddings(tiny_mad,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def count(ctx: E.SuiteContext) -> dict:
        seen.append(ctx.emb)
        return {"n_images": len(ctx.emb)}

    monkeypatch.setitem(E.SUITES, "count", count)
    torch.manual_seed(0)
    res = E.evaluate(create_model("clip"), f"mad:{tiny_mad}", ["count", "retrieval"],
                     max_samples=30, progress=False)
    assert res["count"] == {"n_images": 30} and len(seen) == 1
    with pytest.raises(ValueError, match="unknown suite.*nope"):
        E.evaluate(create_model("clip"), f"mad:{tiny_mad}", ["nope"])


def test_json_output_never_holds_bare_nan(tmp_path, capsys) -> None:
    """Every JSON writer goes through tree.to_json: NaN / Inf become null with a note."""
    import json

    from clipspace.cli.common import emit_json
    from clipspace.tree import to_json

    text = to_json({"a": float("nan"), "b": [1.0, float("inf")], "c": 2})
    data = json.loads(text)
    assert data["a"] is None and data["b"] == [1.0, None] and data["c"] == 2
    assert "a, b[1]" in data["notes"][0]
    emit_json({"x": float("nan")}, str(tmp_path / "o.json"))
    assert "NaN" not in capsys.readouterr().out
    assert json.loads((tmp_path / "o.json").read_text())["x"] is None
