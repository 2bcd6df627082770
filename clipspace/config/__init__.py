"""One typed config tree for every clipspace run.

``schema`` (the dataclasses), ``presets`` (method presets, fine-tuning presets, named model
shapes: data, not code paths), ``overrides`` (dotted keys from presets, TOML and ``--set``;
``resolve``), ``validate`` (names checked against the registries that own them, every numeric key
against its one declared range in ``RANGES``) and ``textfile`` (``read_utf8``, the one reader of
user text files, shared with ``data``).
"""

from clipspace.config.overrides import (
    apply_overrides,
    from_dict,
    load,
    load_toml,
    parse_set,
    resolve,
    save,
    set_value,
    to_dict,
)
from clipspace.config.presets import (
    CUSTOM,
    FINETUNE_PRESETS,
    NAMED_MODELS,
    PRESETS,
    model_names,
    named_overrides,
)
from clipspace.config.schema import (
    AdaptConfig,
    Config,
    ConfigError,
    DataConfig,
    FinetuneConfig,
    GeometryConfig,
    ImageTowerConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TextTowerConfig,
)
from clipspace.config.validate import CONFIG_CHOICES, RANGES, choices, validate
from clipspace.tree import flatten

__all__ = [
    "CONFIG_CHOICES",
    "CUSTOM",
    "FINETUNE_PRESETS",
    "NAMED_MODELS",
    "PRESETS",
    "RANGES",
    "Config",
    "ConfigError",
    "DataConfig",
    "AdaptConfig",
    "FinetuneConfig",
    "GeometryConfig",
    "ImageTowerConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "TextTowerConfig",
    "apply_overrides",
    "choices",
    "flatten",
    "from_dict",
    "load",
    "load_toml",
    "model_names",
    "named_overrides",
    "parse_set",
    "resolve",
    "save",
    "set_value",
    "to_dict",
    "validate",
]
