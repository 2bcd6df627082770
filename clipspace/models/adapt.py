"""Move a pretrained model into any geometry: LoRA adapters (peft) or unlocked towers.

``adapt_model(base, cfg)`` keeps the base's towers and projections and rebuilds everything past
the projections from ``cfg.geometry`` / ``cfg.loss`` (``ClipModel.set_geometry``: curvature,
point maps with their alphas, logit scale, objective), then decides what trains (``cfg.adapt``):

* ``adapt.lora_r = r > 0``: the towers are frozen and low-rank adapters W + (alpha / r) B A
  (Hu et al. 2021, "LoRA") are injected by ``peft`` into ``adapt.lora_targets``: by default
  every linear layer of the attention and MLP of both towers' transformer blocks (clipspace's
  qkv / proj / fc1 / fc2, transformers' q_proj / k_proj / v_proj / out_proj / fc1 / fc2) and
  every convolution of a tower without blocks (the MAD ConvNet). B starts at zero, so the
  adapted model starts as the base.
* ``adapt.unlock = image | text | both``: those towers train in full except their embeddings
  and first ``adapt.lock_layers`` blocks (open_clip's ``--lock-image-unlocked-groups``, counted
  from the input side); the other tower stays frozen.
* neither: only the projections and the geometry parameters train (a linear adaptation).

The projections and the geometry parameters (curvature, alphas, logit scale, SigLIP bias, as
their config makes them learnable) always train in full. ``merge_lora`` folds the adapters
back into plain linear / conv layers (W <- W + (alpha / r) B A).
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
from types import ModuleType

from torch import nn

from clipspace.config import Config, ConfigError
from clipspace.models.clip_model import ClipModel
from clipspace.models.vit import transformer_blocks

#: names of the lists of blocks in a tower: clipspace's ``blocks``, transformers' ``layers``
BLOCK_LISTS = ("blocks", "layers")
#: module types LoRA can adapt
ADAPTABLE = (nn.Linear, nn.Conv2d)
TOWERS = ("visual", "text")
UNLOCK_TOWERS = {"image": ("visual",), "text": ("text",), "both": ("visual", "text")}


def _peft() -> ModuleType:
    """The ``peft`` package (an optional dependency: ``pip install 'clipspace[hf]'``)."""
    try:
        return importlib.import_module("peft")
    except ImportError:
        raise ConfigError("config key 'adapt.lora_r' > 0 needs the peft package: pip install "
                          "'clipspace[hf]' (or pip install peft)") from None


def _lora_layer_type() -> type | None:
    """peft's LoRA layer class, or None when peft is not installed (then no model has one)."""
    if importlib.util.find_spec("peft") is None:
        return None
    return importlib.import_module("peft.tuners.lora").LoraLayer


def tower_blocks(tower: nn.Module) -> list[nn.Module]:
    """The transformer blocks of ``tower``, clipspace's or transformers', from the input side."""
    return transformer_blocks(tower, BLOCK_LISTS)


def default_lora_targets(tower: nn.Module) -> list[str]:
    """The linear layers inside the tower's blocks (attention and MLP); for a tower without
    blocks, its convolutions. Names relative to the tower."""
    blocks = {id(b) for b in tower_blocks(tower)}
    if blocks:
        prefixes = tuple(f"{name}." for name, mod in tower.named_modules() if id(mod) in blocks)
        return [name for name, mod in tower.named_modules()
                if isinstance(mod, nn.Linear) and name.startswith(prefixes)]
    return [name for name, mod in tower.named_modules() if isinstance(mod, nn.Conv2d)]


def lora_targets(tower: nn.Module, spec: str) -> list[str]:
    """Modules of ``tower`` named by ``spec`` (comma-separated names or name suffixes, matched
    at a dot; "" = ``default_lora_targets``) that LoRA can adapt."""
    if not spec.strip():
        return default_lora_targets(tower)
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    return [name for name, mod in tower.named_modules() if isinstance(mod, ADAPTABLE)
            and any(name == w or name.endswith("." + w) for w in wanted)]


def adaptable_names(model: ClipModel) -> list[str]:
    """Every module name LoRA could adapt (for error messages)."""
    return [f"{t}.{name}" for t in TOWERS for name, mod in getattr(model, t).named_modules()
            if isinstance(mod, ADAPTABLE)]


def add_lora(model: ClipModel, r: int, alpha: float, dropout: float, targets: str) -> list[str]:
    """Inject LoRA adapters into both towers; the names adapted (relative to the model)."""
    adapted: list[str] = []
    for tower_name in TOWERS:
        tower = getattr(model, tower_name)
        names = lora_targets(tower, targets)
        if names:
            peft = _peft()
            config = peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                                     target_modules=names)
            peft.inject_adapter_in_model(config, tower)
            adapted += [f"{tower_name}.{n}" for n in names]
    if not adapted:
        raise ConfigError(
            f"config key 'adapt.lora_targets' = {targets!r} matches no linear or conv layer of "
            f"either tower; some that exist: {', '.join(adaptable_names(model)[:8])}")
    return adapted


def unlock_towers(model: ClipModel, unlock: str, lock_layers: int) -> None:
    """Make the towers of ``unlock`` trainable except, when ``lock_layers`` > 0, their
    embeddings (parameters registered before the first block) and first ``lock_layers``
    blocks; norms after the blocks train."""
    for tower_name in UNLOCK_TOWERS.get(unlock, ()):
        tower = getattr(model, tower_name)
        blocks = tower_blocks(tower)
        if lock_layers > len(blocks):
            raise ConfigError(f"config key 'adapt.lock_layers' = {lock_layers} is more than the "
                              f"{len(blocks)} blocks of the {tower_name} tower")
        tower.requires_grad_(True)
        if lock_layers == 0:
            continue
        first = next(blocks[0].parameters())
        for _, param in tower.named_parameters():
            if param is first:
                break
            param.requires_grad_(False)
        for block in blocks[:lock_layers]:
            block.requires_grad_(False)


def adapt_model(base: ClipModel, cfg: Config) -> ClipModel:
    """``base`` (modified in place and returned) in ``cfg``'s geometry with ``cfg.adapt``'s
    trainable parts (module docstring). ``cfg.adapt.base`` names where ``base`` came from."""
    a = cfg.adapt
    if a.lora_r > 0 and a.unlock:
        raise ConfigError("config keys 'adapt.lora_r' and 'adapt.unlock': choose LoRA adapters "
                          "or unlocked towers, not both")
    if a.lock_layers and not a.unlock:
        raise ConfigError("config key 'adapt.lock_layers' needs 'adapt.unlock' (image, text or "
                          "both)")
    base.set_geometry(cfg.geometry, cfg.loss)
    base.config.adapt = copy.deepcopy(a)
    base.config.preset = cfg.preset
    for tower_name in TOWERS:
        getattr(base, tower_name).requires_grad_(False)
    if a.lora_r > 0:
        add_lora(base, a.lora_r, a.lora_alpha, a.lora_dropout, a.lora_targets)
    unlock_towers(base, a.unlock, a.lock_layers)
    return base


def has_lora(model: nn.Module) -> bool:
    layer = _lora_layer_type()
    return layer is not None and any(isinstance(m, layer) for m in model.modules())


def merge_lora(model: ClipModel) -> int:
    """Fold every adapter into its layer (W <- W + scale B A) and put the plain layer back in
    its place; ``config.adapt.lora_r`` becomes 0. Returns the number of layers merged."""
    merged, layer = 0, _lora_layer_type()
    for name, module in list(model.named_modules()):
        if layer is not None and isinstance(module, layer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
            merged += 1
    model.config.adapt.lora_r = 0
    return merged


def trainable_count(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def adaptation_summary(model: ClipModel) -> str:
    """One line: base, geometry, what trains and the trainable share of the parameters."""
    a = model.config.adapt
    how = (f"LoRA r={a.lora_r} alpha={a.lora_alpha:g}" if a.lora_r else
           f"unlocked {a.unlock} (first {a.lock_layers} blocks locked)" if a.unlock else
           "projections and geometry only")
    n, total = trainable_count(model)
    return (f"adapting {a.base} into {model.config.geometry.name} ({how}): {n:,} of {total:,} "
            f"parameters train ({100 * n / max(total, 1):.2f} %)")


__all__ = ["adapt_model", "adaptation_summary", "add_lora", "default_lora_targets", "has_lora",
           "lora_targets", "merge_lora", "tower_blocks", "trainable_count", "unlock_towers"]
