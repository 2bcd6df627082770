"""``build_dataset`` / ``build_loader``: data spec strings -> Dataset / DataLoader.

Specs: ``mad:DIR`` (MADDataset), ``csv:FILE`` (CsvDataset), ``wds:PATTERN`` (WebDataset shards),
``hierarcaps:FILE`` (HierarCaps test CSV with its images), ``scenes:DIR`` (MAD scenes with box
crops, ``MadScenes``, batched by ``SceneCollate``). Readers other than MAD are imported
lazily; ``wds:`` without the optional ``webdataset`` package is a DataError saying
``pip install 'clipspace[wds]'`` (``import_wds``).

Map-style datasets are batched by ``ShardedBatchSampler``, a deterministic, rank-sharded,
resumable batch sampler. Epoch e: ``perm = torch.randperm(n, generator=seed + e)`` (or ``arange``
without shuffle), cut to a multiple of ``world_size`` (``drop_last``) or padded by wrapping around
(DistributedSampler's rule), then rank r takes ``perm[r::world_size]``. Batches are consecutive
slices of that; with ``drop_last`` the incomplete last batch is dropped, so every rank yields the
same count. ``set_epoch(epoch, start_index=b)`` skips the first ``b`` batches of the epoch: a run
resumed after ``b`` batches sees exactly the batches it had not yet consumed.
Use ``set_loader_epoch(loader, epoch, start_index)`` to also tell the dataset (caption redraw).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from clipspace.config import ConfigError, DataConfig
from clipspace.data import mad_schema
from clipspace.data.caption_fraction import with_caption_fraction
from clipspace.data.collate import Collate
from clipspace.data.csv_dataset import CsvDataset
from clipspace.data.hierarcaps import HierarCapsImages
from clipspace.data.mad import MADDataset, read_manifest
from clipspace.data.mad_scenes import MadScenes, SceneCollate, read_scenes_manifest
from clipspace.data.tokenizer import get_tokenizer
from clipspace.data.transforms import image_transform
from clipspace.errors import DataError

SCHEMES: tuple[str, ...] = ("mad", "csv", "wds", "hierarcaps", "scenes")
DEFAULT_IMAGE_SIZE = 224


class ShardedBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices for one rank; ``len`` = batches left in this epoch."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        self.start_index = 0

    def set_epoch(self, epoch: int, start_index: int = 0) -> None:
        """Select the epoch's permutation and skip its first ``start_index`` batches."""
        if start_index < 0:
            raise ValueError(f"start_index must be >= 0, got {start_index}")
        self.epoch = int(epoch)
        self.start_index = int(start_index)

    @property
    def samples_per_rank(self) -> int:
        if self.drop_last:
            return self.n // self.world_size
        return -(-self.n // self.world_size)

    @property
    def batches_per_epoch(self) -> int:
        """Batches per rank in a full epoch."""
        m = self.samples_per_rank
        return m // self.batch_size if self.drop_last else -(-m // self.batch_size)

    def rank_indices(self) -> list[int]:
        """This rank's sample order for the current epoch (before batching and skipping)."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            perm = torch.randperm(self.n, generator=g)
        else:
            perm = torch.arange(self.n)
        total = self.samples_per_rank * self.world_size
        if total <= self.n:
            perm = perm[:total]
        elif self.n > 0:
            reps = -(-total // self.n)
            perm = perm.repeat(reps)[:total]
        return perm[self.rank :: self.world_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        idx = self.rank_indices()
        bs = self.batch_size
        for b in range(self.start_index, self.batches_per_epoch):
            yield idx[b * bs : (b + 1) * bs]

    def __len__(self) -> int:
        return max(self.batches_per_epoch - self.start_index, 0)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "start_index": self.start_index, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed = int(state.get("seed", self.seed))
        self.set_epoch(int(state["epoch"]), int(state.get("start_index", 0)))


def parse_spec(spec: str, key: str = "data.train") -> tuple[str, str]:
    """``"mad:data/mad"`` -> ``("mad", "data/mad")``; ConfigError naming ``key`` otherwise."""
    scheme, sep, rest = str(spec).partition(":")
    if not sep or scheme not in SCHEMES or not rest:
        raise ConfigError(
            f"{key} = {spec!r}: expected SCHEME:PATH with SCHEME one of {list(SCHEMES)}"
        )
    return scheme, rest


def _key(split: str) -> str:
    return "data.train" if split == "train" else "data.val"


def import_wds(spec: str, key: str = "data.train") -> ModuleType:
    """``clipspace.data.wds``; without the optional ``webdataset`` package a DataError naming
    ``key`` and saying how to install it."""
    try:
        return importlib.import_module("clipspace.data.wds")
    except ImportError as err:
        if not (err.name or "").startswith("webdataset"):
            raise
        raise DataError(
            f"{key} = {spec!r}: WebDataset shards need the 'webdataset' package, which is not "
            f"installed ({err}); install it with: pip install 'clipspace[wds]'"
        ) from None


def build_dataset(
    spec: str,
    cfg: DataConfig,
    split: str = "train",
    image_size: int | None = None,
    seed: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    transform: Callable[[Any], Any] | None = None,
) -> Dataset:
    """The dataset of ``spec`` for ``split`` ("train" | "test" | "val"; MAD maps "val" to
    "test"). ``image_size`` (or ``cfg.image_size``) sets the non-MAD transforms' size; MAD images
    are 28x28 and are resized only when a different size is asked for. ``seed`` fixes MAD captions
    and WebDataset shard order; ``rank``/``world_size`` shard WebDataset (default: from
    torch.distributed). ``transform`` (PIL image -> tensor; a pretrained model's own
    preprocessing) replaces the default image transform of every scheme.
    """
    scheme, path = parse_spec(spec, _key(split))
    size = image_size or cfg.image_size or 0
    train = split == "train"
    if scheme == "mad":
        if transform is None and size and size != 28:
            transform = image_transform(size, mad_schema.MEAN, mad_schema.STD, resize_mode="squash")
        return MADDataset(
            path,
            split="test" if split == "val" else split,
            num_attrs=cfg.num_attrs,
            main_object=cfg.main_object,
            objects_only=cfg.objects_only,
            redraw_per_epoch=cfg.redraw_per_epoch,
            seed=seed,
            transform=transform,
            max_samples=cfg.max_samples,
        )
    if scheme == "scenes":  # MAD scenes: scene images and their box crops at the tower's size
        return MadScenes(path, split="test" if split == "val" else split,
                         crop_size=size or read_scenes_manifest(path)["image_shape"][0],
                         image_size=size, max_samples=cfg.max_samples)

    transform = transform or image_transform(size or DEFAULT_IMAGE_SIZE, train=train)
    if scheme == "csv":
        return CsvDataset(
            path,
            img_key=cfg.csv_img_key,
            caption_key=cfg.csv_caption_key,
            sep=cfg.csv_sep,
            image_root=cfg.image_root,
            transform=transform,
            max_bad_fraction=cfg.max_bad_fraction,
        )
    if scheme == "wds":
        wds_dataset = import_wds(spec, _key(split)).wds_dataset
        return wds_dataset(
            path,
            transform=transform,
            resampled=cfg.resampled,
            epoch_samples=cfg.epoch_samples,
            seed=seed,
            shuffle_buffer=1000 if train else 0,
            rank=rank,
            world_size=world_size,
            max_bad_fraction=cfg.max_bad_fraction,
        )

    return HierarCapsImages(
        path,
        image_dir=cfg.image_root or None,
        transform=transform,
        max_bad_fraction=cfg.max_bad_fraction,
    )


def build_loader(
    spec: str | Dataset,
    cfg: DataConfig,
    tokenizer,
    split: str = "train",
    rank: int = 0,
    world_size: int = 1,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = True,
    image_size: int | None = None,
    transform: Callable[[Any], Any] | None = None,
) -> DataLoader:
    """A DataLoader of collated batches (``Collate(tokenizer)``), ``cfg.batch_size`` per rank.

    Map-style datasets get a ``ShardedBatchSampler`` (``loader.batch_sampler``); iterable ones
    (WebDataset) shard themselves by rank/worker and are batched by the DataLoader.
    """
    if isinstance(spec, Dataset):
        ds = spec
    else:
        ds = build_dataset(spec, cfg, split, image_size, seed, rank=rank, world_size=world_size,
                           transform=transform)
        if split == "train":  # data.caption_fraction: training captions only
            ds = with_caption_fraction(ds, cfg, seed)
    workers = int(cfg.workers)
    common: dict[str, Any] = {
        "num_workers": workers,
        "collate_fn": SceneCollate(tokenizer) if isinstance(ds, MadScenes) else Collate(tokenizer),
        "persistent_workers": False,
    }
    if isinstance(ds, IterableDataset):
        return DataLoader(ds, batch_size=cfg.batch_size, drop_last=drop_last, **common)
    sampler = ShardedBatchSampler(
        len(ds), cfg.batch_size, rank=rank, world_size=world_size, shuffle=shuffle, seed=seed,
        drop_last=drop_last,
    )
    return DataLoader(ds, batch_sampler=sampler, **common)


def set_loader_epoch(loader: DataLoader, epoch: int, start_index: int = 0) -> None:
    """Start ``epoch`` at batch ``start_index`` (sampler) and redraw captions (dataset)."""
    bs = loader.batch_sampler
    if isinstance(bs, ShardedBatchSampler):
        bs.set_epoch(epoch, start_index)
    elif start_index:
        raise ValueError("start_index needs a map-style dataset with a ShardedBatchSampler")
    for obj in (loader.dataset, getattr(loader.dataset, "dataset", None)):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


def resolve_tokenizer(cfg: DataConfig, context_length: int | None = None):
    """``data.tokenizer`` if set, else the MAD directory's own tokenizer.json (``data.train =
    mad:DIR``); ConfigError otherwise. ``context_length`` overrides the stored one."""

    if cfg.tokenizer:
        return get_tokenizer(cfg.tokenizer, context_length)
    scheme, path = parse_spec(cfg.train, "data.train")
    if scheme == "scenes":  # MAD scenes carry MAD's tokenizer at their caption length
        read_scenes_manifest(path)
        tok = get_tokenizer(path)
        if context_length is not None and context_length < tok.context_length:
            raise ConfigError(
                f"model.text.context_length = {context_length} would cut the captions of "
                f"{cfg.train!r} (they need {tok.context_length} tokens): set "
                f"model.text.context_length >= {tok.context_length}")
        return get_tokenizer(path, context_length)
    if scheme != "mad":
        raise ConfigError(
            f"data.tokenizer is empty and data.train = {cfg.train!r} has no tokenizer of its own; "
            "set data.tokenizer (train one with `clipspace tokenizer train`)"
        )

    read_manifest(path)  # a missing MAD directory is reported as such, not as a tokenizer
    return get_tokenizer(path, context_length)
