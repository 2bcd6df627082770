"""Transforms: sizes, normalisation numbers, colour modes, seeded random crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from clipspace.data.transforms import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    CenterCrop,
    Compose,
    Normalize,
    RandomResizedCrop,
    Resize,
    ToTensor,
    image_transform,
    to_rgb,
)
from clipspace.errors import ClipspaceError


def test_resize_shorter_side_keeps_aspect() -> None:
    img = Image.new("RGB", (200, 100))  # (w, h)
    out = Resize(50)(img)
    assert out.size == (100, 50)
    out = Resize(50)(np.zeros((300, 90, 3), np.uint8))
    assert out.size == (50, 167)


def test_resize_longest_and_squash() -> None:
    img = Image.new("RGB", (200, 100))
    assert Resize(50, mode="longest")(img).size == (50, 25)
    assert Resize(40, mode="squash")(img).size == (40, 40)
    assert Resize((30, 60))(img).size == (60, 30)


def test_center_crop_takes_the_middle() -> None:
    arr = np.zeros((10, 20), np.uint8)
    arr[3:7, 8:12] = 255  # a bright 4x4 centre square
    out = np.asarray(CenterCrop(4)(arr))
    assert out.shape == (4, 4)
    assert (out == 255).all()


def test_center_crop_pads_small_images() -> None:
    out = CenterCrop((6, 6))(Image.new("L", (2, 2), 200))
    arr = np.asarray(out)
    assert arr.shape == (6, 6)
    assert arr[2:4, 2:4].min() == 200 and arr[0, 0] == 0


@pytest.mark.parametrize("size", [32, (24, 40)])
def test_eval_transform_shape_and_range(size: int | tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    t = image_transform(size)
    x = t(rng.integers(0, 256, (77, 130, 3), dtype=np.uint8))
    h, w = (size, size) if isinstance(size, int) else size
    assert x.shape == (3, h, w) and x.dtype == torch.float32
    lo = (0 - max(OPENAI_CLIP_MEAN)) / min(OPENAI_CLIP_STD)
    hi = (1 - min(OPENAI_CLIP_MEAN)) / min(OPENAI_CLIP_STD)
    assert x.min() >= lo - 1e-5 and x.max() <= hi + 1e-5


def test_normalisation_numbers() -> None:
    grey = np.full((8, 8, 3), 128, np.uint8)
    x = image_transform(8)(grey)
    for c in range(3):
        expected = (128 / 255 - OPENAI_CLIP_MEAN[c]) / OPENAI_CLIP_STD[c]
        assert torch.allclose(x[c], torch.full((8, 8), expected), atol=1e-5)
    y = Normalize([0.5], [0.25])(torch.tensor([[[1.0, 0.0]]]))
    assert torch.allclose(y, torch.tensor([[[2.0, -2.0]]]))
    norm = Normalize(OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
    x = torch.rand(2, 3, 5, 4)
    assert torch.allclose(norm(x)[1], norm(x[1]), atol=1e-6)  # batched (torch) == single (numpy)


def test_to_tensor_values() -> None:
    arr = np.array([[0, 255], [51, 102]], np.uint8)
    x = ToTensor()(arr)
    assert x.shape == (1, 2, 2)
    assert torch.allclose(x[0], torch.tensor([[0.0, 1.0], [0.2, 0.4]]))
    rgb = ToTensor()(Image.new("RGB", (3, 2), (255, 0, 51)))
    assert rgb.shape == (3, 2, 3)
    assert torch.allclose(rgb[:, 0, 0], torch.tensor([1.0, 0.0, 0.2]))


def test_colour_modes_become_rgb() -> None:
    grey = to_rgb(np.full((5, 6), 77, np.uint8))
    assert grey.mode == "RGB" and np.asarray(grey)[0, 0].tolist() == [77, 77, 77]
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent -> white background
    assert np.asarray(to_rgb(rgba))[0, 0].tolist() == [255, 255, 255]
    rgba[..., 3] = 255  # opaque red stays red
    assert np.asarray(to_rgb(rgba))[0, 0].tolist() == [255, 0, 0]
    pal = Image.new("P", (4, 4))
    pal.putpalette([10, 20, 30] * 256)
    assert np.asarray(to_rgb(pal))[0, 0].tolist() == [10, 20, 30]
    x = image_transform(16)(np.full((20, 20), 128, np.uint8))
    assert x.shape == (3, 16, 16)
    assert not torch.allclose(x[0], x[2])  # per-channel mean/std applied to 3 channels


def test_rejects_bad_inputs() -> None:
    with pytest.raises(ClipspaceError):
        to_rgb(np.zeros((4, 4), np.float32))
    with pytest.raises(ClipspaceError):
        to_rgb(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ClipspaceError):
        image_transform(8, resize_mode="bogus")


def test_random_resized_crop_seeded_determinism() -> None:
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, (60, 90, 3), dtype=np.uint8))
    a = image_transform(24, train=True, seed=7, scale=(0.3, 1.0))
    b = image_transform(24, train=True, seed=7, scale=(0.3, 1.0))
    c = image_transform(24, train=True, seed=8, scale=(0.3, 1.0))
    xa = [a(img) for _ in range(3)]
    xb = [b(img) for _ in range(3)]
    xc = [c(img) for _ in range(3)]
    assert all(torch.equal(p, q) for p, q in zip(xa, xb, strict=True))
    assert not torch.equal(xa[0], xa[1])  # successive draws differ
    assert not all(torch.equal(p, q) for p, q in zip(xa, xc, strict=True))
    assert xa[0].shape == (3, 24, 24)


def test_random_resized_crop_box_respects_scale_and_ratio() -> None:
    crop = RandomResizedCrop(10, scale=(0.2, 0.5), ratio=(0.5, 2.0), seed=0)
    for _ in range(50):
        top, left, h, w = crop.get_params(100, 80)
        assert 0 <= top and top + h <= 80 and 0 <= left and left + w <= 100
        area = h * w / (100 * 80)
        assert 0.18 <= area <= 0.52
        assert 0.45 <= w / h <= 2.2


def test_compose_order() -> None:
    t = Compose([lambda v: v + 1, lambda v: v * 10])
    assert t(1) == 20
