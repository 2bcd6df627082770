"""Evaluation data: a spec string (``mad:DIR``, ``hierarcaps:CSV[::IMAGES]``) or a Dataset."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset, Subset

from clipspace.data.hierarcaps import HierarCapsImages
from clipspace.data.mad import MADDataset
from clipspace.data.tokenizer import get_tokenizer
from clipspace.data.transforms import image_transform
from clipspace.errors import DataError

SCHEMES = ("mad", "hierarcaps")


def _parse_spec(spec: str) -> tuple[str, str]:
    kind, sep, path = spec.partition(":")
    if not sep:
        raise DataError(f"data spec {spec!r} must look like mad:DIR or hierarcaps:CSV")
    if kind not in SCHEMES:
        raise DataError(f"data spec {spec!r}: evaluation supports mad: and hierarcaps: only")
    return kind, path


def load_eval_dataset(
    data: str | Dataset, model: Any = None, split: str = "test", image_dir: str | None = None
) -> Dataset:
    """A Dataset for ``data``. MAD captions take the shape the model trained on (its config's
    data section); HierarCaps images get the model's own ``preprocess`` when it has one."""
    if not isinstance(data, str):
        return data
    kind, path = _parse_spec(data)
    if kind == "mad":
        data_cfg = getattr(getattr(model, "config", None), "data", None)
        if data_cfg is None or not str(getattr(data_cfg, "train", "")).startswith("mad:"):
            return MADDataset(path, split=split)
        return MADDataset(path, split=split, num_attrs=data_cfg.num_attrs,
                          main_object=data_cfg.main_object, objects_only=data_cfg.objects_only)
    if "::" in path and image_dir is None:
        path, image_dir = path.split("::", 1)
    size = int(getattr(model, "image_size", 224) or 224)
    transform = getattr(model, "preprocess", None) or image_transform(size)
    return HierarCapsImages(path, image_dir, transform=transform)


def dataset_tokenizer(dataset: Dataset, model: Any = None) -> Any:
    """The tokenizer that ships with a dataset (MAD's tokenizer.json)."""
    root = getattr(innermost(dataset), "root", None)
    if root is None:
        raise DataError("no tokenizer given and the dataset has none (pass tokenizer=...)")
    return get_tokenizer(root, context_length=getattr(model, "context_length", None))


def innermost(dataset: Dataset) -> Dataset:
    """The dataset under any ``Subset`` wrappers."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def caption_num_attrs(dataset: Dataset) -> int:
    """Attributes per caption of a MAD dataset (0 when unknown or objects only): zero-shot
    templates take the same shape as the captions the model saw."""
    base = innermost(dataset)
    if getattr(base, "objects_only", False):
        return 0
    return int(getattr(base, "num_attrs", 0) or 0)


__all__ = ["caption_num_attrs", "dataset_tokenizer", "innermost", "load_eval_dataset"]
