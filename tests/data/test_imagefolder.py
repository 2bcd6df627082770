"""``imagefolder:DIR``: classes from sorted sub-folders, names and prompts from CLIP_benchmark
style files, clear errors for bad folders and files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipspace.data.imagefolder import ImageFolderDataset
from clipspace.data.transforms import image_transform
from clipspace.errors import DataError


def make_folder(root: Path, classes: dict[str, int], size: int = 20, seed: int = 0) -> Path:
    """``root/<class>/<i>.png`` random RGB images, ``classes[name]`` per class."""
    rng = np.random.default_rng(seed)
    for name, n in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_classes_labels_and_default_prompts(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "f", {"zebra": 2, "golden_retriever": 3})
    ds = ImageFolderDataset(root, image_transform(16))
    assert ds.classnames == ["golden retriever", "zebra"]  # sorted folders, "_" -> " "
    assert len(ds) == 5
    item = ds[0]
    assert item["class"] == 0 and item["image"].shape == (3, 16, 16)
    assert item["text"] == "a photo of a golden retriever."
    assert ds[4]["class"] == 1
    task = ds.zeroshot_tasks()["class"]
    assert task.prompts()[1] == ["a photo of a zebra."]


def test_classnames_and_template_files(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "f", {"n01": 1, "n02": 1})
    names = tmp_path / "classnames.txt"
    names.write_text("goldfish\nshark\n")
    lines = tmp_path / "templates.txt"
    lines.write_text("a photo of a {c}.\na drawing of a {c}.\n")
    ds = ImageFolderDataset(root, image_transform(16), classnames=names, templates=lines)
    assert ds.task.prompts() == [["a photo of a goldfish.", "a drawing of a goldfish."],
                                 ["a photo of a shark.", "a drawing of a shark."]]
    per_class = tmp_path / "cupl.json"
    per_class.write_text(json.dumps({"goldfish": ["an orange fish"],
                                     "shark": ["a big fish", "fins in the sea"]}))
    ds = ImageFolderDataset(root, image_transform(16), classnames=names, templates=per_class)
    assert ds.task.prompts() == [["an orange fish"], ["a big fish", "fins in the sea"]]


def test_bad_folders_and_files_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a directory"):
        ImageFolderDataset(tmp_path / "missing", image_transform(16))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        ImageFolderDataset(tmp_path / "empty", image_transform(16))
    root = make_folder(tmp_path / "f", {"a": 1})
    (root / "b").mkdir()
    with pytest.raises(DataError, match="'b' holds no images"):
        ImageFolderDataset(root, image_transform(16))
    root = make_folder(tmp_path / "g", {"a": 1, "b": 1})
    names = tmp_path / "names.txt"
    names.write_text("only-one\n")
    with pytest.raises(DataError, match="1 class names for 2 class folders"):
        ImageFolderDataset(root, image_transform(16), classnames=names)
    bad = tmp_path / "t.txt"
    bad.write_text("a photo\n")
    with pytest.raises(DataError, match="line 1.*placeholder"):
        ImageFolderDataset(root, image_transform(16), templates=bad)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 {c}\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        ImageFolderDataset(root, image_transform(16), templates=latin)
    partial = tmp_path / "p.json"
    partial.write_text(json.dumps({"a": ["x"]}))
    with pytest.raises(DataError, match="no prompts for classes.*'b'"):
        ImageFolderDataset(root, image_transform(16), templates=partial)


def test_unreadable_image_is_skipped_and_counted(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "f", {"a": 3})
    (root / "a" / "1.png").write_bytes(b"not a png")
    ds = ImageFolderDataset(root, image_transform(16), max_bad_fraction=0.5)
    assert ds[1]["index"] == 2 and ds.bad_images.bad == 1
