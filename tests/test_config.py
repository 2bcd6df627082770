import json

import pytest

from clipspace import config as C


def test_presets_resolve_and_differ():
    clip = C.resolve("clip")
    meru = C.resolve("meru")
    euclip = C.resolve("euclip")
    atmg = C.resolve("atmg")
    assert clip.geometry.name == "sphere" and clip.loss.logit == "cosine"
    assert meru.geometry.name == "lorentz" and meru.loss.entail_weight == pytest.approx(0.2)
    assert euclip.model.image.final_ln is False and euclip.model.text.final_ln is False
    assert euclip.loss.logit_scale == 1.0 and euclip.geometry.embed_scale == "sqrt_dim"
    assert atmg.loss.contrastive == "angle" and atmg.geometry.learn_curv is False
    assert atmg.geometry.curv == pytest.approx(0.1)


def test_overrides_are_typed():
    cfg = C.resolve("clip", {"optim.lr": "1e-3", "optim.steps": "20", "run.compile": "true"})
    assert cfg.optim.lr == pytest.approx(1e-3)
    assert cfg.optim.steps == 20 and isinstance(cfg.optim.steps, int)
    assert cfg.run.compile is True


@pytest.mark.parametrize(
    "key,value,needle",
    [
        ("optim.lrr", "1", "optim has no field 'lrr'"),
        ("nope.x", "1", "has no field 'nope'"),
        ("optim.steps", "abc", "expected int"),
        ("optim.steps", "1.5", "expected int"),
        ("geometry.name", "hyperbolic", "allowed: 'sphere', 'euclidean', 'lorentz'"),
        ("optim", "1", "is a section"),
    ],
)
def test_bad_override_names_key(key, value, needle):
    with pytest.raises(C.ConfigError) as err:
        C.resolve("clip", {key: value})
    assert needle in str(err.value)
    assert key.split(".")[0] in str(err.value)


def test_impossible_combination():
    with pytest.raises(C.ConfigError, match="entail_weight"):
        C.resolve("clip", {"loss.entail_weight": "0.2"})
    with pytest.raises(C.ConfigError, match="accum_steps"):
        C.resolve("clip", {"data.batch_size": "10", "optim.accum_steps": "3"})
    with pytest.raises(C.ConfigError, match="unknown preset"):
        C.resolve("hyperclip")
    with pytest.raises(C.ConfigError, match="loss.siglip_exchange='ring' needs"):
        C.resolve("clip", {"loss.siglip_exchange": "ring"})
    ring = C.resolve("clip", {"loss.contrastive": "siglip", "loss.siglip_exchange": "ring"})
    assert ring.loss.siglip_exchange == "ring"


def test_any_loss_geometry_combination_allowed():
    cfg = C.resolve("euclip", {"loss.contrastive": "angle", "loss.centroid_weight": "0.5"})
    assert cfg.geometry.name == "euclidean"
    cfg = C.resolve("euclip", {"loss.entail_weight": "0.2"})
    assert cfg.loss.entail_weight == pytest.approx(0.2)


def test_toml_then_cli_precedence(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('[optim]\nlr = 0.01\nsteps = 7\n[geometry]\ncurv = 2.0\n')
    cfg = C.resolve("meru", {"optim.steps": "9"}, toml)
    assert cfg.optim.lr == pytest.approx(0.01)
    assert cfg.optim.steps == 9
    assert cfg.geometry.curv == pytest.approx(2.0)


def test_toml_errors_name_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim\nlr = 1\n")
    with pytest.raises(C.ConfigError, match="bad.toml"):
        C.resolve("clip", toml_path=bad)
    with pytest.raises(C.ConfigError, match="not found"):
        C.resolve("clip", toml_path=tmp_path / "missing.toml")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[optim]\nfoo = 1\n")
    with pytest.raises(C.ConfigError, match="optim.foo"):
        C.resolve("clip", toml_path=unknown)


def test_save_load_roundtrip(tmp_path):
    cfg = C.resolve("atmg", {"optim.lr": "3e-4", "data.train": "mad:/x"})
    C.save(cfg, tmp_path / "config.json")
    back = C.load(tmp_path / "config.json")
    assert back == cfg
    assert json.loads((tmp_path / "config.json").read_text())["preset"] == "atmg"


def test_parse_set_requires_equals():
    assert C.parse_set(["a.b=1", "c.d = x=y"]) == {"a.b": "1", "c.d": "x=y"}
    with pytest.raises(C.ConfigError, match="KEY=VALUE"):
        C.parse_set(["a.b"])
