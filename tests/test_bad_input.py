"""Bad config input is answered before anything runs: ranges of every numeric key (declared
once, in ``config.validate.RANGES``), TOML files that are not UTF-8 or not files, and the CLI's
exit code 2 with a message naming the file, line or key."""

from __future__ import annotations

from pathlib import Path
from typing import get_type_hints

import pytest

from clipspace import config as C
from clipspace.cli import main
from clipspace.config.validate import RANGES
from clipspace.tree import flatten


@pytest.mark.parametrize(
    "key,value",
    [
        ("optim.lr", "inf"),
        ("optim.eps", "0"),
        ("optim.beta1", "1.5"),
        ("data.workers", "-1"),
        ("optim.weight_decay", "-0.1"),
        ("optim.warmup_steps", "-5"),
        ("optim.grad_clip", "-1"),
        ("data.max_samples", "-1"),
        ("run.save_every", "-1"),
        ("optim.min_lr_ratio", "5"),
        ("data.max_bad_fraction", "2"),
        ("run.dist_timeout", "0"),
        ("loss.siglip_bias", "-inf"),
    ],
)
def test_out_of_range_value_names_key_and_range(key: str, value: str) -> None:
    with pytest.raises(C.ConfigError) as err:
        C.resolve("clip", {key: value})
    msg = str(err.value)
    assert repr(key) in msg and "must be" in msg and "got" in msg


def test_existing_range_messages_still_hold() -> None:
    with pytest.raises(C.ConfigError, match="'geometry.curv' must be > 0"):
        C.resolve("clip", {"geometry.curv": "-1"})
    with pytest.raises(C.ConfigError, match="'optim.steps' must be >= 1"):
        C.resolve("clip", {"optim.steps": "0"})
    with pytest.raises(C.ConfigError, match="'data.num_attrs' must be in 0..5"):
        C.resolve("clip", {"data.num_attrs": "6"})
    with pytest.raises(C.ConfigError, match="curv_min"):
        C.resolve("meru", {"geometry.curv_min": "5", "geometry.curv_max": "6"})


def _numeric_keys() -> list[str]:
    """Every int / float field of the config tree, as dotted keys."""
    cfg = C.Config()
    out = []
    for key in flatten(C.to_dict(cfg)):
        parts = key.split(".")
        node = cfg
        for p in parts[:-1]:
            node = getattr(node, p)
        if get_type_hints(type(node))[parts[-1]] in (int, float):
            out.append(key)
    return out


def test_every_numeric_key_has_one_declared_range() -> None:
    numeric = _numeric_keys()
    assert sorted(RANGES) == sorted(numeric)


def test_defaults_and_presets_are_in_range() -> None:
    for preset in C.PRESETS:
        C.resolve(preset)


def test_dist_timeout_key() -> None:
    assert C.resolve("clip").run.dist_timeout == 300
    assert C.resolve("clip", {"run.dist_timeout": "30"}).run.dist_timeout == 30


@pytest.mark.parametrize(
    "data,line,byte",
    [
        ("[optim]\nlr = 0.01\n# caf\xe9\n".encode("latin-1"), 3, "0xe9"),
        ("[optim]\nlr = 0.01\n".encode("utf-16"), 1, "0xff"),
        (b"[optim]\nlr = 1\n\x00\x81\x82binary", 3, "0x81"),
    ],
)
def test_toml_not_utf8_names_file_and_line(tmp_path: Path, data: bytes, line: int,
                                           byte: str) -> None:
    path = tmp_path / "run.toml"
    path.write_bytes(data)
    with pytest.raises(C.ConfigError) as err:
        C.load_toml(path)
    msg = str(err.value)
    assert str(path) in msg and f"line {line}" in msg and byte in msg and "UTF-8" in msg


def test_toml_with_utf8_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf[optim]\nlr = 0.01\n")
    assert C.load_toml(path) == {"optim.lr": 0.01}


def test_config_folder_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(C.ConfigError, match="is a directory"):
        C.load_toml(tmp_path)
    assert main(["train", "--config", str(tmp_path), "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "is a directory" in err


def test_cli_rejects_out_of_range_before_running(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    code = main(["train", "--set", "optim.lr=inf", "--output-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "'optim.lr' must be > 0" in err
    assert not any(tmp_path.iterdir())  # nothing was written


def test_cli_non_utf8_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes("[run]\nname = \"caf\xe9\"\n".encode("latin-1"))
    assert main(["train", "--config", str(path), "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "line 2" in err
