"""Evaluation data: a spec string (``mad:DIR``, ``hierarcaps:CSV[::IMAGES]``,
``imagefolder:DIR``, and images with several captions each: ``csv:FILE[::IMAGES]``,
``wds:PATTERN``, ``coco:ANNOTATIONS.json[::IMAGES]``) or a Dataset; ``SCHEMES`` maps each scheme
to its loader."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset, Subset

from clipspace.data import mad_schema
from clipspace.data.captioned_images import (
    DEFAULT_CSV_LAYOUT,
    CaptionedImages,
    read_coco_captions,
    read_csv_groups,
    read_wds_groups,
)
from clipspace.data.hierarcaps import HierarCapsImages
from clipspace.data.imagefolder import ImageFolderDataset
from clipspace.data.mad import MADDataset
from clipspace.data.tokenizer import get_tokenizer
from clipspace.data.transforms import image_transform
from clipspace.errors import DataError


def _parse_spec(spec: str) -> tuple[str, str]:
    kind, sep, path = spec.partition(":")
    if not sep or kind not in SCHEMES:
        raise DataError(f"data spec {spec!r}: evaluation supports "
                        f"{', '.join(k + ':' for k in SCHEMES)} (e.g. mad:DIR, imagefolder:DIR)")
    return kind, path


def _image_transform(model: Any) -> Any:
    """The model's own preprocessing (pretrained checkpoints), else a resize to its input."""
    size = int(getattr(model, "image_size", 224) or 224)
    return getattr(model, "preprocess", None) or image_transform(size)


def _mad_transform(model: Any) -> Any:
    """MAD images (28x28) for the model's input: its own preprocessing (pretrained checkpoints:
    resize, crop, their normalisation), a squash-resize with MAD's statistics for a clipspace
    tower of another size, else None (MAD's own 28x28 tensors)."""
    if getattr(model, "preprocess", None) is not None:
        return model.preprocess
    size = int(getattr(model, "image_size", 28) or 28)
    if size == 28:
        return None
    return image_transform(size, mad_schema.MEAN, mad_schema.STD, resize_mode="squash")


def _mad(path: str, model: Any, split: str, opts: dict[str, Any]) -> Dataset:
    """MAD, captions shaped like the ones the model trained on (its config's data section)."""
    data_cfg = getattr(getattr(model, "config", None), "data", None)
    transform = _mad_transform(model)
    if data_cfg is None or not str(getattr(data_cfg, "train", "")).startswith("mad:"):
        return MADDataset(path, split=split, transform=transform)
    return MADDataset(path, split=split, num_attrs=data_cfg.num_attrs,
                      main_object=data_cfg.main_object, objects_only=data_cfg.objects_only,
                      transform=transform)


def _hierarcaps(path: str, model: Any, split: str, opts: dict[str, Any]) -> Dataset:
    image_dir = opts.get("image_dir")
    if "::" in path and image_dir is None:
        path, image_dir = path.split("::", 1)
    return HierarCapsImages(path, image_dir, transform=_image_transform(model))


def _imagefolder(path: str, model: Any, split: str, opts: dict[str, Any]) -> Dataset:
    return ImageFolderDataset(path, _image_transform(model), classnames=opts.get("classnames"),
                              templates=opts.get("templates"))


def _split_images(path: str, opts: dict[str, Any]) -> tuple[str, str | None]:
    """``FILE::IMAGES`` -> (FILE, IMAGES); else (path, the ``image_dir`` option)."""
    if "::" in path:
        path, image_dir = path.split("::", 1)
        return path, image_dir
    return path, opts.get("image_dir")


def _csv_layouts(model: Any) -> list[tuple[str, str, str]]:
    """Column layouts to try: the model's training config (``data.csv_*``), then the defaults."""
    cfg = getattr(getattr(model, "config", None), "data", None)
    own = (getattr(cfg, "csv_img_key", None), getattr(cfg, "csv_caption_key", None),
           getattr(cfg, "csv_sep", None))
    layouts = [own] if all(isinstance(v, str) and v for v in own) else []
    return list(dict.fromkeys([*layouts, DEFAULT_CSV_LAYOUT]))


def _csv(path: str, model: Any, split: str, opts: dict[str, Any]) -> Dataset:
    """Image-caption rows; rows that share an image path are one image with several captions."""
    path, image_dir = _split_images(path, opts)
    groups = read_csv_groups(path, _csv_layouts(model), image_root=image_dir or "",
                             label_columns=opts.get("label_columns") or ())
    return CaptionedImages(groups, _image_transform(model), name=path)


def _coco(path: str, model: Any, split: str, opts: dict[str, Any]) -> Dataset:
    """A COCO captions JSON; images from ``::IMAGES``, ``image_dir``, else the JSON's folder."""
    path, image_dir = _split_images(path, opts)
    return CaptionedImages(read_coco_captions(path, image_dir), _image_transform(model), name=path)


def _wds(path: str, model: Any, split: str, opts: dict[str, Any]) -> Dataset:
    """WebDataset shards read once; samples with identical image bytes are one image."""
    return CaptionedImages(read_wds_groups(path), _image_transform(model), name=path)


#: scheme -> loader(path, model, split, options); options: image_dir, classnames, templates
SCHEMES: dict[str, Callable[[str, Any, str, dict[str, Any]], Dataset]] = {
    "mad": _mad,
    "hierarcaps": _hierarcaps,
    "imagefolder": _imagefolder,
    "csv": _csv,
    "wds": _wds,
    "coco": _coco,
}
#: schemes with a separate train split (the linear probe trains there; else on half the data)
TRAIN_SPLIT_SCHEMES: tuple[str, ...] = ("mad",)


def load_eval_dataset(
    data: str | Dataset, model: Any = None, split: str = "test", image_dir: str | None = None,
    classnames: str | None = None, templates: str | None = None,
    label_columns: tuple[str, ...] = (),
) -> Dataset:
    """A Dataset for ``data`` (a spec string or an existing Dataset). ``image_dir``: the image
    folder of HierarCaps, COCO and CSV data; ``classnames`` / ``templates``: files for an image
    folder's zero-shot prompts; ``label_columns``: CSV columns read as integer labels."""
    if not isinstance(data, str):
        return data
    kind, path = _parse_spec(data)
    opts = {"image_dir": image_dir, "classnames": classnames, "templates": templates,
            "label_columns": tuple(label_columns)}
    return SCHEMES[kind](path, model, split, opts)


def has_train_split(data: Any) -> bool:
    """Whether ``data`` (a spec) has a train split distinct from the evaluated one."""
    return isinstance(data, str) and data.partition(":")[0] in TRAIN_SPLIT_SCHEMES


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


__all__ = ["SCHEMES", "caption_num_attrs", "dataset_tokenizer", "has_train_split", "innermost",
           "load_eval_dataset"]
