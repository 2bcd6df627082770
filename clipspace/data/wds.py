"""WebDataset tar shards of image + caption, read with the ``webdataset`` package.

A shard is a tar file whose members are grouped by key: ``<key>.jpg`` (or png/jpeg/webp) and
``<key>.txt`` (the caption) or ``<key>.json`` (an object with a ``"caption"`` field, or ``"text"``,
or a bare JSON string). ``pattern`` is a brace pattern (``shards/{000..099}.tar``), a glob
(``shards/*.tar``), or several of those joined by ``::``.

Splitting (open_clip's scheme): without resampling the shard list is shuffled with the same seed on
every rank (``seed + epoch``), then rank r takes shards ``r::world_size`` and DataLoader worker w of
that rank takes ``w::num_workers`` of those, so ranks and workers see disjoint samples. With
``resampled=True`` every (rank, worker) draws shards with replacement from its own seeded stream,
forever; ``epoch_samples`` then sets the epoch length.

``epoch_samples`` is the number of samples per epoch over all ranks (like open_clip's
``--train-num-samples``): each worker stops after ``ceil(epoch_samples / (world_size *
num_workers))`` samples. 0 = one pass over the shards (not allowed with ``resampled``).
"""

from __future__ import annotations

import glob
import json
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.shardlists import expand_urls
from webdataset.tariterators import tarfile_samples

from clipspace.data.bad_images import IMAGE_ERRORS, BadImageCounter, read_image
from clipspace.data.transforms import image_transform
from clipspace.errors import DataError

Transform = Callable[[Any], torch.Tensor]
IMAGE_KEYS = ("jpg", "png", "jpeg", "webp")
TEXT_KEYS = ("txt", "json")


def expand_pattern(pattern: str) -> list[str]:
    """Shard paths from brace patterns, globs and ``::``-joined lists (sorted globs)."""
    urls: list[str] = []
    for url in expand_urls(pattern):
        if any(ch in url for ch in "*?[") and "://" not in url:
            urls.extend(sorted(glob.glob(url)))
        else:
            urls.append(url)
    return urls


def _dist_rank() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def caption_from(value: bytes, ext: str) -> str:
    """Caption text from a ``.txt`` member, or a ``.json`` one (``caption`` / ``text`` / string)."""
    text = value.decode("utf-8")
    if ext != "json":
        return text.strip()
    obj = json.loads(text)
    if isinstance(obj, str):
        return obj.strip()
    if isinstance(obj, dict):
        for field in ("caption", "text"):
            if isinstance(obj.get(field), str):
                return obj[field].strip()
    raise ValueError("json has no 'caption' (or 'text') string field")


class WdsDataset(IterableDataset):
    """Iterable of ``{"image": (3,H,W), "text": str, "index": int, "key": str}``.

    ``index`` is unique within an epoch: the k-th sample of global worker g (= rank * num_workers
    + worker) gets ``k * world_size * num_workers + g``. Bad samples (undecodable image, missing
    image or caption member, unreadable shard) are dropped and counted in ``self.bad_images``.
    Call ``set_epoch(e)`` before each epoch to reshuffle.
    """

    def __init__(
        self,
        pattern: str,
        transform: Transform,
        image_key: Sequence[str] = IMAGE_KEYS,
        text_key: Sequence[str] = TEXT_KEYS,
        resampled: bool = False,
        epoch_samples: int = 0,
        seed: int = 0,
        shuffle_buffer: int = 1000,
        rank: int | None = None,
        world_size: int | None = None,
        max_bad_fraction: float = 0.01,
    ) -> None:
        super().__init__()
        self.pattern = pattern
        self.urls = expand_pattern(pattern)
        if not self.urls:
            raise DataError(f"webdataset pattern {pattern!r} matches no shard")
        local_missing = [u for u in self.urls if "://" not in u and not Path(u).is_file()]
        if local_missing:
            raise DataError(
                f"webdataset pattern {pattern!r}: {len(local_missing)} shard(s) not found, "
                f"e.g. {local_missing[0]}"
            )
        if resampled and epoch_samples <= 0:
            raise DataError("webdataset: resampled=True needs epoch_samples > 0 (an epoch length)")
        self.transform = transform
        self.image_key = (image_key,) if isinstance(image_key, str) else tuple(image_key)
        self.text_key = (text_key,) if isinstance(text_key, str) else tuple(text_key)
        self.resampled = resampled
        self.epoch_samples = int(epoch_samples)
        self.seed = int(seed)
        self.shuffle_buffer = int(shuffle_buffer)
        self._rank = rank
        self._world_size = world_size
        self.epoch = 0
        self.bad_images = BadImageCounter(max_bad_fraction, total=None, name=pattern)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def rank_world(self) -> tuple[int, int]:
        """(rank, world_size): explicit values, else torch.distributed, else (0, 1)."""
        rank, world = _dist_rank()
        rank = rank if self._rank is None else self._rank
        world = world if self._world_size is None else self._world_size
        if not 0 <= rank < world:
            raise DataError(f"webdataset: rank {rank} outside world_size {world}")
        return rank, world

    def shards_for(self, rank: int, world: int, worker: int, workers: int) -> list[str]:
        """The shards one (rank, worker) reads in one pass (no resampling)."""
        urls = list(self.urls)
        if self.shuffle_buffer > 0:
            random.Random(self.seed + self.epoch).shuffle(urls)  # same order on every rank
        return urls[rank::world][worker::workers]

    def _shard_stream(self, rank: int, world: int, worker: int, workers: int) -> Iterator[str]:
        if not self.resampled:
            yield from self.shards_for(rank, world, worker, workers)
            return
        rng = random.Random(f"{self.seed}-{self.epoch}-{rank}-{worker}-shards")
        while True:
            yield rng.choice(self.urls)

    def _bad_shard(self, exc: Exception) -> bool:
        self.bad_images.record_bad(self.pattern, f"unreadable shard member: {exc}")
        return True  # keep going

    def _decode(self, sample: dict[str, Any]) -> dict[str, Any] | None:
        key = str(sample.get("__key__", "?"))
        where = f"{sample.get('__url__', self.pattern)}:{key}"
        img_ext = next((k for k in self.image_key if k in sample), None)
        txt_ext = next((k for k in self.text_key if k in sample), None)
        if img_ext is None or txt_ext is None:
            what = "image" if img_ext is None else "caption"
            self.bad_images.record_bad(where, f"no {what} member")
            return None
        try:
            caption = caption_from(sample[txt_ext], txt_ext)
        except (ValueError, UnicodeDecodeError) as exc:
            self.bad_images.record_bad(where, f"bad caption: {exc}")
            return None
        if not caption:
            self.bad_images.record_bad(where, "empty caption")
            return None
        try:
            image = read_image(bytes(sample[img_ext]))
        except IMAGE_ERRORS as exc:
            self.bad_images.record_bad(where, type(exc).__name__)
            return None
        self.bad_images.record_ok()
        return {"image": self.transform(image), "text": caption, "key": key}

    def _shuffled(self, items: Iterable[dict[str, Any]], rng: random.Random) -> Iterator[dict]:
        """Shuffle buffer of ``shuffle_buffer`` samples (0 = keep order)."""
        if self.shuffle_buffer <= 1:
            yield from items
            return
        buf: list[dict[str, Any]] = []
        for item in items:
            buf.append(item)
            if len(buf) >= self.shuffle_buffer:
                j = rng.randrange(len(buf))
                buf[j], buf[-1] = buf[-1], buf[j]
                yield buf.pop()
        rng.shuffle(buf)
        yield from buf

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world = self.rank_world()
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        shards = ({"url": u} for u in self._shard_stream(rank, world, worker, workers))
        samples = tarfile_samples(shards, handler=self._bad_shard)
        rng = random.Random(f"{self.seed}-{self.epoch}-{rank}-{worker}-buffer")
        decoded = (d for d in map(self._decode, samples) if d is not None)
        limit = math.ceil(self.epoch_samples / (world * workers)) if self.epoch_samples else -1
        stride, offset = world * workers, rank * workers + worker
        for k, item in enumerate(self._shuffled(decoded, rng)):
            if k == limit:
                break
            item["index"] = k * stride + offset
            yield item


def wds_dataset(
    pattern: str,
    transform: Transform | None = None,
    image_key: Sequence[str] = IMAGE_KEYS,
    text_key: Sequence[str] = TEXT_KEYS,
    resampled: bool = False,
    epoch_samples: int = 0,
    seed: int = 0,
    shuffle_buffer: int = 1000,
    rank: int | None = None,
    world_size: int | None = None,
    max_bad_fraction: float = 0.01,
) -> WdsDataset:
    """Build a :class:`WdsDataset` (transform defaults to ``image_transform(224)``)."""
    if transform is None:
        transform = image_transform(224)
    return WdsDataset(
        pattern,
        transform,
        image_key=image_key,
        text_key=text_key,
        resampled=resampled,
        epoch_samples=epoch_samples,
        seed=seed,
        shuffle_buffer=shuffle_buffer,
        rank=rank,
        world_size=world_size,
        max_bad_fraction=max_bad_fraction,
    )
