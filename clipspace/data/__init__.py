"""Data: MAD (synthetic digits + attribute captions), image-text readers, tokenizer, loaders.

Names are imported lazily (``from clipspace.data import MADDataset`` works, ``import
clipspace.data`` stays cheap). See docs/data.md.
"""

from __future__ import annotations

from typing import Any

_LAZY: dict[str, str] = {
    "Tokenizer": "clipspace.data.tokenizer",
    "get_tokenizer": "clipspace.data.tokenizer",
    "train_tokenizer": "clipspace.data.tokenizer",
    "end_positions": "clipspace.data.tokenizer",
    "caption": "clipspace.data.captions",
    "parse_caption": "clipspace.data.captions",
    "CaptionPlan": "clipspace.data.captions",
    "MADDataset": "clipspace.data.mad",
    "MadScenes": "clipspace.data.mad_scenes",
    "SceneCollate": "clipspace.data.mad_scenes",
    "collate_scenes": "clipspace.data.mad_scenes",
    "crop_boxes": "clipspace.data.mad_scenes",
    "generate_mad_scenes": "clipspace.data.mad_scenes_generate",
    "Chain": "clipspace.data.chains",
    "mad_chains": "clipspace.data.chains",
    "entails": "clipspace.data.chains",
    "ZeroShotTask": "clipspace.data.zeroshot",
    "mad_tasks": "clipspace.data.zeroshot",
    "Collate": "clipspace.data.collate",
    "collate": "clipspace.data.collate",
    "build_dataset": "clipspace.data.build",
    "build_loader": "clipspace.data.build",
    "set_loader_epoch": "clipspace.data.build",
    "ShardedBatchSampler": "clipspace.data.build",
    "resolve_tokenizer": "clipspace.data.build",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clipspace.data' has no attribute {name!r}")
