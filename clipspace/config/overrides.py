"""Overrides: dotted keys from presets, TOML files and ``--set`` onto a ``Config``.

Order (later wins): dataclass defaults <- the named model shape of ``model.name`` <- preset <-
TOML file (``--config run.toml``) <- explicit overrides (``--set optim.lr=1e-3``). Every value is
type-checked; an error names the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

if sys.version_info >= (3, 11):  # noqa: UP036
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from clipspace.config.presets import (
    CUSTOM,
    PRESETS,
    model_names,
    named_overrides,
    normalise_model_name,
)
from clipspace.config.schema import Config, ConfigError
from clipspace.config.textfile import read_utf8
from clipspace.config.validate import validate
from clipspace.io import atomic_write_text
from clipspace.tree import flatten


def _walk(cfg: Any, dotted: str) -> tuple[Any, str, Any]:
    """Return (parent dataclass, leaf name, leaf type) for a dotted key, or raise ConfigError."""
    parts = dotted.split(".")
    node = cfg
    for i, part in enumerate(parts):
        names = [f.name for f in fields(node)]
        if part not in names:
            where = ".".join(parts[:i]) or "<root>"
            raise ConfigError(
                f"unknown config key {dotted!r}: {where} has no field {part!r}; "
                f"allowed: {', '.join(names)}"
            )
        hints = get_type_hints(type(node))
        if i == len(parts) - 1:
            return node, part, hints[part]
        node = getattr(node, part)
        if not is_dataclass(node):
            raise ConfigError(f"config key {dotted!r}: {'.'.join(parts[: i + 1])} is not a section")
    raise ConfigError(f"empty config key {dotted!r}")  # pragma: no cover


def _coerce(key: str, value: Any, typ: Any) -> Any:
    """Convert ``value`` (a string from the CLI or a TOML value) to ``typ``, or raise."""
    origin = get_origin(typ)
    if origin is not None and type(None) in get_args(typ):  # Optional[...]
        typ = next(a for a in get_args(typ) if a is not type(None))
    if is_dataclass(typ):
        raise ConfigError(f"config key {key!r} is a section; set one of its fields")
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            if isinstance(value, str) and "e" in value.lower():
                return int(float(value))
            return int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            out = float(value)
            if math.isnan(out):
                raise ValueError
            return out
        if typ is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        name = getattr(typ, "__name__", str(typ))
        raise ConfigError(f"config key {key!r}: expected {name}, got {value!r}") from None
    return value


def set_value(cfg: Config, dotted: str, value: Any) -> None:
    """Set one dotted key with type checking (``set_value(cfg, "optim.lr", "1e-3")``).

    Setting ``model.name`` to a named model also sets its shape fields (``named_overrides``):
    the named shape is a layer under every key set after it."""
    parent, leaf, typ = _walk(cfg, dotted)
    out = _coerce(dotted, value, typ)
    if dotted == "model.name":
        out = normalise_model_name(out)
        shape = named_overrides(out)
        if shape is None and out != CUSTOM:
            raise ConfigError(
                f"config key 'model.name': unknown model {value!r}; allowed: "
                + ", ".join(model_names())
            )
        for key, shape_value in (shape or {}).items():
            p, k, t = _walk(cfg, key)
            setattr(p, k, _coerce(key, shape_value, t))
    setattr(parent, leaf, out)


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Set every dotted key of ``overrides`` on ``cfg`` (in place; returned), ``model.name``
    first so that the named shape lies under the other keys whatever their order."""
    items = sorted(overrides.items(), key=lambda kv: kv[0] != "model.name")
    for key, value in items:
        set_value(cfg, key, value)
    return cfg


def parse_set(items: list[str]) -> dict[str, str]:
    """Parse ``["a.b=1", ...]`` into a dict; an item without '=' is an error naming it."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into dotted overrides. A missing file, a folder, a file that is
    not UTF-8 (the line of the first bad byte) and a syntax error each name the file."""
    path = Path(path)
    text = read_utf8(path, "TOML config file", ConfigError)
    try:
        tree = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: {err}") from None
    return flatten(tree)


def resolve(
    preset: str = "clip",
    overrides: dict[str, Any] | None = None,
    toml_path: str | Path | None = None,
) -> Config:
    """Build a validated Config: defaults <- preset <- TOML file <- explicit overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
    cfg = Config(preset=preset)
    merged: dict[str, Any] = dict(PRESETS[preset])
    if toml_path:
        merged.update(load_toml(toml_path))
    merged.update(overrides or {})
    merged.pop("preset", None)
    apply_overrides(cfg, merged)
    validate(cfg)
    return cfg


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(tree: dict[str, Any]) -> Config:
    """Rebuild a Config from ``to_dict`` output (e.g. a saved ``config.json``)."""
    return apply_overrides(Config(), flatten(tree))


def save(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as JSON, atomically."""
    atomic_write_text(Path(path), json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n")


def load(path: str | Path) -> Config:
    path = Path(path)
    try:
        tree = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read config {path}: {err}") from None
    return from_dict(tree)
