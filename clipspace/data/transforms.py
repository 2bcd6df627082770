"""Image transforms without torchvision, on PIL images or uint8 numpy arrays.

Matches open_clip's ``image_transform``: eval = resize the shorter side to ``image_size`` (bicubic)
then centre crop; train = random-resized crop (scale (0.9, 1.0), ratio (3/4, 4/3), bicubic). Both
convert to RGB, then to a float (3, H, W) tensor in [0, 1], then normalise
``x' = (x - mean_c) / std_c`` with the OpenAI CLIP statistics by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from clipspace.errors import ClipspaceError

OPENAI_CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

ImageLike = Image.Image | np.ndarray
Size = int | tuple[int, int]
RESIZE_MODES = ("shortest", "longest", "squash")


def _hw(size: Size) -> tuple[int, int]:
    """``size`` as (height, width)."""
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def to_pil(image: ImageLike) -> Image.Image:
    """A PIL image from a PIL image or a uint8 array (H, W) / (H, W, 1|3|4)."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ClipspaceError(f"image array must be uint8, got {image.dtype}")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4)):
            return Image.fromarray(np.ascontiguousarray(image))
        raise ClipspaceError(f"image array must be (H, W) or (H, W, 1|3|4), got {image.shape}")
    raise ClipspaceError(f"expected a PIL image or a numpy array, got {type(image).__name__}")


def to_rgb(image: ImageLike) -> Image.Image:
    """Convert grayscale / RGBA / palette / CMYK / 16-bit images to RGB (alpha over white)."""
    image = to_pil(image)
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(image, dtype=np.float64)
        hi = 65535.0 if image.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        image = Image.fromarray(arr)
    return image.convert("RGB")


class Compose:
    """Apply callables in order: ``Compose([f, g])(x) == g(f(x))``."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Any) -> Any:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class ToRGB:
    """PIL / numpy image -> RGB PIL image."""

    def __call__(self, image: ImageLike) -> Image.Image:
        return to_rgb(image)

    def __repr__(self) -> str:
        return "ToRGB()"


class Resize:
    """Resize with bicubic interpolation.

    ``mode="shortest"``: shorter side -> ``size`` (int), keeping the aspect ratio;
    ``"longest"``: longer side -> ``size``; ``"squash"`` or a (h, w) size: exactly that size.
    """

    def __init__(self, size: Size, mode: str = "shortest") -> None:
        if mode not in RESIZE_MODES:
            raise ClipspaceError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
        self.size = size
        self.mode = mode

    def __call__(self, image: ImageLike) -> Image.Image:
        image = to_pil(image)
        w, h = image.size
        if self.mode == "squash" or not isinstance(self.size, int):
            th, tw = _hw(self.size)
        else:
            short, long = min(w, h), max(w, h)
            scale = self.size / (short if self.mode == "shortest" else long)
            tw, th = max(1, round(w * scale)), max(1, round(h * scale))
            if self.mode == "shortest":  # exact on the short side despite rounding
                tw, th = (self.size, th) if w <= h else (tw, self.size)
            else:
                tw, th = (self.size, th) if w >= h else (tw, self.size)
        if (tw, th) == (w, h):
            return image
        return image.resize((tw, th), Image.Resampling.BICUBIC)

    def __repr__(self) -> str:
        return f"Resize({self.size}, mode={self.mode!r})"


class CenterCrop:
    """Crop the centre (h, w); pads with ``fill`` where the image is smaller."""

    def __init__(self, size: Size, fill: int = 0) -> None:
        self.size = _hw(size)
        self.fill = fill

    def __call__(self, image: ImageLike) -> Image.Image:
        image = to_pil(image)
        th, tw = self.size
        w, h = image.size
        left = int(round((w - tw) / 2.0))
        top = int(round((h - th) / 2.0))
        if left >= 0 and top >= 0:
            return image.crop((left, top, left + tw, top + th))
        bands = len(image.getbands())
        canvas = Image.new(image.mode, (tw, th), self.fill if bands == 1 else (self.fill,) * bands)
        canvas.paste(image, (-left, -top))
        return canvas

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"


class RandomResizedCrop:
    """Crop a random area fraction in ``scale`` with aspect ratio in ``ratio`` (log-uniform),
    resized to ``size`` with bicubic interpolation (Szegedy et al. 2015; torchvision's algorithm:
    10 tries, then a centre crop clamped to the ratio range).

    ``seed=None`` draws from torch's global RNG (DataLoader seeds each worker differently);
    an int seed gives a private generator per DataLoader worker, seeded ``seed + worker_id``,
    so a run is reproducible.
    """

    def __init__(
        self,
        size: Size,
        scale: tuple[float, float] = (0.9, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        seed: int | None = None,
    ) -> None:
        if not (0 < scale[0] <= scale[1] <= 1.0):
            raise ClipspaceError(f"scale must satisfy 0 < lo <= hi <= 1, got {scale}")
        if not (0 < ratio[0] <= ratio[1]):
            raise ClipspaceError(f"ratio must satisfy 0 < lo <= hi, got {ratio}")
        self.size = _hw(size)
        self.scale = scale
        self.ratio = ratio
        self.seed = seed
        self._generators: dict[int, torch.Generator] = {}

    def _generator(self) -> torch.Generator | None:
        if self.seed is None:
            return None
        info = torch.utils.data.get_worker_info()
        wid = 0 if info is None else info.id
        if wid not in self._generators:
            self._generators[wid] = torch.Generator().manual_seed(self.seed + wid)
        return self._generators[wid]

    def _uniform(self, lo: float, hi: float, gen: torch.Generator | None) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=gen))

    def get_params(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(top, left, h, w) of the crop box."""
        gen = self._generator()
        area = width * height
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target = area * self._uniform(self.scale[0], self.scale[1], gen)
            aspect = math.exp(self._uniform(log_lo, log_hi, gen))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (), generator=gen))
                left = int(torch.randint(0, width - w + 1, (), generator=gen))
                return top, left, h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, image: ImageLike) -> Image.Image:
        image = to_pil(image)
        top, left, h, w = self.get_params(*image.size)
        th, tw = self.size
        return image.resize(
            (tw, th), Image.Resampling.BICUBIC, box=(left, top, left + w, top + h)
        )

    def __repr__(self) -> str:
        return f"RandomResizedCrop({self.size}, scale={self.scale}, ratio={self.ratio})"


class ToTensor:
    """PIL / uint8 array (H, W[, C]) -> float32 tensor (C, H, W) in [0, 1] (x / 255)."""

    def __call__(self, image: ImageLike) -> torch.Tensor:
        arr = np.asarray(image) if isinstance(image, Image.Image) else image
        if arr.dtype != np.uint8:
            raise ClipspaceError(f"ToTensor expects uint8 pixels, got {arr.dtype}")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        # numpy, not torch: tiny torch ops in the main process are slow when CPU threads contend
        chw = np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)
        chw *= np.float32(1.0 / 255.0)
        return torch.from_numpy(chw)

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """``x'_c = (x_c - mean_c) / std_c`` on a (C, H, W) or (B, C, H, W) tensor."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std):
            raise ClipspaceError(f"mean and std differ in length: {len(mean)} vs {len(std)}")
        if any(s <= 0 for s in std):
            raise ClipspaceError(f"std must be positive, got {tuple(std)}")
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(-1, 1, 1)
        self._mean_np = self.mean.numpy().copy()
        self._std_np = self.std.numpy().copy()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-3] != self.mean.shape[0]:
            raise ClipspaceError(
                f"Normalize has {self.mean.shape[0]} channels, image has {x.shape[-3]}"
            )
        if x.device.type == "cpu" and not x.requires_grad and x.ndim == 3:
            out = (x.float().numpy() - self._mean_np) / self._std_np  # fast path, see ToTensor
            return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))
        return (x.float() - self.mean.to(x.device)) / self.std.to(x.device)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


def image_transform(
    image_size: Size,
    mean: Sequence[float] = OPENAI_CLIP_MEAN,
    std: Sequence[float] = OPENAI_CLIP_STD,
    train: bool = False,
    resize_mode: str = "shortest",
    scale: tuple[float, float] = (0.9, 1.0),
    seed: int | None = None,
) -> Compose:
    """open_clip-style preprocessing: image -> normalised float tensor (3, H, W).

    eval: ``shortest`` = resize shorter side + centre crop; ``longest`` = resize longer side +
    centre pad (fill 0); ``squash`` = resize to exactly (H, W). train: random-resized crop.
    """
    if resize_mode not in RESIZE_MODES:
        raise ClipspaceError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
    size = _hw(image_size)
    steps: list[Callable[[Any], Any]] = [ToRGB()]
    if train:
        steps.append(RandomResizedCrop(size, scale=scale, seed=seed))
    elif resize_mode == "squash":
        steps.append(Resize(size, mode="squash"))
    else:
        steps += [Resize(max(size), mode=resize_mode), CenterCrop(size)]
    steps += [ToTensor(), Normalize(mean, std)]
    return Compose(steps)
