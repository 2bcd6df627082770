"""Skip-and-count for corrupt or missing images, safe across DataLoader worker processes.

Design (works with ``num_workers > 0``): a :class:`BadImageCounter` keeps its counts in shared
memory (``multiprocessing.Value`` / ``Array`` created in the main process when the dataset is
built). DataLoader workers receive the dataset, counter included, when they start (fork: the memory
is inherited; spawn/forkserver: the shared objects are passed while spawning, which
``multiprocessing`` allows), so every worker adds to the same numbers and the main process reads
the totals with no help from the collate function or the training loop.

* ``record_ok()`` / ``record_bad(path, reason)`` are called by the reader for every image it is
  asked for (``read_counted``). A bad image is skipped by the reader (map-style readers return the
  next valid item, ``first_readable``, counting only the row asked for; iterable readers drop the
  sample), so no marker ever reaches the collate function. Only regular files are opened: a FIFO,
  socket, device or folder named as an image is a bad image (``NotRegularFileError``), never a
  read that blocks.
* Stopping early: when the dataset size is known (map-style), ``record_bad`` raises
  :class:`DataError` as soon as ``bad > max_bad_fraction * max(total, seen)``, which the epoch can
  no longer get under; when it is not known (WebDataset), it raises once at least ``min_seen``
  images were tried and ``bad > max_bad_fraction * seen``. In a worker the error reaches the main
  process through the DataLoader, which re-raises it with the same type.
* ``end_epoch()`` (call it from the main process after each epoch; :func:`end_epoch_report` finds
  the counter on a dataset or a ``Subset`` of one) prints a one-line summary if any image was bad,
  raises :class:`DataError` naming example files if the bad fraction is above the limit, and resets
  the counts for the next epoch.

A counter pickled outside process spawning (``copy.deepcopy``, ``pickle.dumps``) becomes a private,
unshared copy holding the same counts.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import get_spawning_popen
from pathlib import Path
from typing import Any, TextIO

from PIL import Image

from clipspace.errors import DataError

_EXAMPLES_BYTES = 4096  # shared buffer for example file names (newline separated)
MAX_EXAMPLES = 5


@dataclass
class BadImageSummary:
    """Counts for one epoch: images tried, images bad, examples ``"path (reason)"``."""

    seen: int
    bad: int
    examples: list[str]

    @property
    def fraction(self) -> float:
        return self.bad / self.seen if self.seen else 0.0

    def message(self, name: str = "") -> str:
        where = f" in {name}" if name else ""
        text = f"{self.bad} of {self.seen} images{where} were corrupt or missing and were skipped"
        text += f" ({100 * self.fraction:.2f}%)"
        if self.examples:
            text += "; e.g. " + "; ".join(self.examples)
        return text


class _Local:
    """Stand-in for a shared Value/Array in an unshared copy (same ``.value`` / lock API)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def get_lock(self) -> _NullLock:
        return _NullLock()


class _NullLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class BadImageCounter:
    """Shared counts of images tried and images skipped as corrupt/missing.

    ``max_bad_fraction`` is ``config.data.max_bad_fraction``; ``total`` the dataset size when known
    (enables the early stop); ``name`` (e.g. the CSV path) goes into messages.
    """

    def __init__(
        self,
        max_bad_fraction: float = 0.01,
        total: int | None = None,
        name: str = "",
        min_seen: int = 200,
    ) -> None:
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise DataError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction}")
        self.max_bad_fraction = float(max_bad_fraction)
        self.total = total
        self.name = name
        self.min_seen = int(min_seen)
        # locks from the spawn context also work in forked children; fork-context locks cannot
        # be passed to spawned DataLoader workers
        ctx = multiprocessing.get_context("spawn")
        self._seen: Any = ctx.Value("q", 0)
        self._bad: Any = ctx.Value("q", 0)
        self._examples: Any = ctx.Array("c", _EXAMPLES_BYTES)

    # pickling: shared objects only while spawning a worker; otherwise a private copy
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if get_spawning_popen() is None:
            state["_seen"] = _Local(self._seen.value)
            state["_bad"] = _Local(self._bad.value)
            state["_examples"] = _Local(bytes(self._examples.value))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # counting
    def record_ok(self) -> None:
        """One image decoded fine."""
        with self._seen.get_lock():
            self._seen.value += 1

    def record_bad(self, path: str, reason: str = "") -> None:
        """One image could not be read: count it, keep it as an example, stop if over the limit."""
        with self._seen.get_lock():
            self._seen.value += 1
            seen = self._seen.value
        with self._bad.get_lock():
            self._bad.value += 1
            bad = self._bad.value
        self._add_example(f"{path} ({reason})" if reason else str(path))
        if self._over_limit_early(seen, bad):
            summary = self.summary()
            raise DataError(
                f"too many bad images (limit data.max_bad_fraction={self.max_bad_fraction}): "
                + summary.message(self.name)
            )

    def _add_example(self, text: str) -> None:
        line = text.replace("\n", " ").encode("utf-8", "replace")[:400]
        with self._examples.get_lock():
            current = bytes(self._examples.value)
            if current.count(b"\n") >= MAX_EXAMPLES:
                return
            new = current + line + b"\n"
            if len(new) < _EXAMPLES_BYTES:
                self._examples.value = new

    def _over_limit_early(self, seen: int, bad: int) -> bool:
        if self.total is not None:
            return bad > self.max_bad_fraction * max(self.total, seen)
        return seen >= self.min_seen and bad > self.max_bad_fraction * seen

    # reading
    @property
    def seen(self) -> int:
        return int(self._seen.value)

    @property
    def bad(self) -> int:
        return int(self._bad.value)

    def summary(self) -> BadImageSummary:
        raw = bytes(self._examples.value).decode("utf-8", "replace")
        examples = [line for line in raw.split("\n") if line]
        return BadImageSummary(seen=self.seen, bad=self.bad, examples=examples)

    def reset(self) -> None:
        with self._seen.get_lock():
            self._seen.value = 0
        with self._bad.get_lock():
            self._bad.value = 0
        with self._examples.get_lock():
            self._examples.value = b""

    def end_epoch(self, file: TextIO | None = None, reset: bool = True) -> BadImageSummary:
        """Print the epoch's summary (if any image was bad); raise DataError above the limit."""
        summary = self.summary()
        if reset:
            self.reset()
        if summary.bad:
            print("[clipspace] " + summary.message(self.name), file=file or sys.stderr)
        if summary.bad and summary.bad > self.max_bad_fraction * summary.seen:
            raise DataError(
                f"too many bad images (limit data.max_bad_fraction={self.max_bad_fraction}): "
                + summary.message(self.name)
            )
        return summary


def find_counter(dataset: object) -> BadImageCounter | None:
    """The counter of a reader, looking through ``Subset``-style ``.dataset`` wrappers."""
    seen: set[int] = set()
    while dataset is not None and id(dataset) not in seen:
        seen.add(id(dataset))
        counter = getattr(dataset, "bad_images", None)
        if isinstance(counter, BadImageCounter):
            return counter
        dataset = getattr(dataset, "dataset", None)
    return None


def end_epoch_report(dataset: object, file: TextIO | None = None) -> BadImageSummary | None:
    """Call at the end of every epoch (main process): summary line, error above the limit."""
    counter = find_counter(dataset)
    return None if counter is None else counter.end_epoch(file=file)


# exceptions that mean "this image is corrupt or missing" (PIL raises OSError subclasses for
# truncated/unidentified files, ValueError/SyntaxError for some broken headers)
IMAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    Image.DecompressionBombError,
)


class NotRegularFileError(OSError):
    """An image path that names a FIFO, socket, device or folder: never opened (a FIFO would
    block the reader forever), treated like an unreadable image."""


def read_image(source: str | Path | bytes) -> Image.Image:
    """Open and fully decode an image file (or encoded bytes); errors are ``IMAGE_ERRORS``.
    Only a regular file is opened (``NotRegularFileError`` otherwise)."""
    if not isinstance(source, bytes):
        mode = os.stat(source).st_mode  # FileNotFoundError for a missing file
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(f"{source}: not a regular file")
    fh = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    with fh:
        image = Image.open(fh)
        image.load()  # decode now so truncated files fail here, not in the transform
    return image


def bad_reason(exc: BaseException) -> str:
    """Short reason for the examples of a ``BadImageCounter``."""
    if isinstance(exc, FileNotFoundError):
        return "missing"
    if isinstance(exc, NotRegularFileError):
        return "not a regular file"
    return type(exc).__name__


def read_counted(source: str | Path | bytes, transform: Callable[[Any], Any],
                 counter: BadImageCounter | None, name: str = "") -> Any | None:
    """``transform(read_image(source))``, or None when the image cannot be read; with a
    ``counter`` the attempt is recorded (``record_ok`` / ``record_bad`` under ``name``, default
    the path)."""
    try:
        image = read_image(source)
    except IMAGE_ERRORS as exc:
        if counter is not None:
            counter.record_bad(name or str(source), bad_reason(exc))
        return None
    if counter is not None:
        counter.record_ok()
    return transform(image)


def first_readable(
    index: int, n: int, load: Callable[..., Any | None], path: object
) -> tuple[int, Any]:
    """``(i, load(i))`` for the first row from ``index`` on (wrapping) whose ``load`` is not
    None: readers skip a corrupt or missing image by returning the next readable row.

    Only the row asked for is counted (``load(index)``; the rows tried after it are loaded with
    ``count=False``): each row is counted once per epoch, when its own index comes, so bad rows
    next to each other count as often as the same rows spread out."""
    if not -n <= index < n:
        raise IndexError(index)
    for step in range(n):
        i = (index % n + step) % n
        item = load(i, count=step == 0)
        if item is not None:
            return i, item
    raise DataError(f"{path}: no readable image in any row")
