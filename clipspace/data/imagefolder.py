"""``imagefolder:DIR``: one sub-folder per class, as torchvision's ImageFolder and
CLIP_benchmark's local datasets lay them out.

Classes are the sub-folders in sorted order (label = position). Class names for prompts come from
the folder names (underscores become spaces) or from ``classnames`` (a file with one name per
line, in sorted folder order, CLIP_benchmark's ``classnames.txt`` convention). Prompts come from
``templates`` (``read_templates``): one template per line with ``{c}``, or a JSON object mapping
each class name to its own list of prompts (CuPL style). Without one, "a photo of a {c}.".

Items: ``{"image", "text" (the class's first prompt: the caption used for gap analysis),
"class": int, "index": int}``. A corrupt image is skipped (the next one is returned) and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from clipspace.data.bad_images import BadImageCounter, first_readable, read_counted
from clipspace.data.zeroshot import ZeroShotTask, read_classnames, read_templates
from clipspace.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
DEFAULT_TEMPLATE = "a photo of a {c}."


def scan_image_folder(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """(sorted class folder names, [(image path, label)]); errors name the folder."""
    if not root.is_dir():
        raise DataError(f"imagefolder:{root}: not a directory")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"imagefolder:{root}: no class sub-folders (expected DIR/<class>/<image>)")
    samples: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        files = sorted(f for f in (root / name).rglob("*")
                       if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"imagefolder:{root}: class folder {name!r} holds no images "
                            f"({', '.join(IMAGE_SUFFIXES)})")
        samples.extend((f, label) for f in files)
    return classes, samples


class ImageFolderDataset(Dataset):
    """Images of ``root/<class>/...`` with class labels and zero-shot prompts (module doc)."""

    def __init__(
        self,
        root: str | Path,
        transform: Callable[[Any], torch.Tensor],
        classnames: str | Path | None = None,
        templates: str | Path | None = None,
        max_bad_fraction: float = 0.01,
    ) -> None:
        self.root = Path(root)
        self.folders, self.samples = scan_image_folder(self.root)
        self.classnames = (read_classnames(classnames, len(self.folders)) if classnames
                           else [f.replace("_", " ") for f in self.folders])
        prompts = read_templates(templates, self.classnames) if templates else [DEFAULT_TEMPLATE]
        self.task = ZeroShotTask.from_prompts("class", "class", self.classnames, prompts)
        self.transform = transform
        self.bad_images = BadImageCounter(max_bad_fraction, total=len(self.samples),
                                          name=str(self.root))

    def __len__(self) -> int:
        return len(self.samples)

    def zeroshot_tasks(self) -> dict[str, ZeroShotTask]:
        return {"class": self.task}

    @property
    def label_keys(self) -> tuple[str, ...]:
        return ("class",)

    def load(self, i: int, count: bool = True) -> Any | None:
        """Transformed image of sample ``i``, or None when it cannot be read (counted when
        ``count``: see ``bad_images.first_readable``)."""
        return read_counted(self.samples[i][0], self.transform,
                            self.bad_images if count else None)

    def __getitem__(self, index: int) -> dict[str, Any]:
        i, image = first_readable(index, len(self), self.load, self.root)
        label = self.samples[i][1]
        return {"image": image, "text": self.task.prompts()[label][0], "class": label,
                "index": i}


__all__ = ["DEFAULT_TEMPLATE", "IMAGE_SUFFIXES", "ImageFolderDataset", "scan_image_folder"]
