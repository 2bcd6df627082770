"""BadImageCounter: counts, examples, limits, sharing with worker processes."""

from __future__ import annotations

import copy
import io
import multiprocessing

import pytest

from clipspace.data.bad_images import BadImageCounter, end_epoch_report, read_image
from clipspace.errors import DataError


def test_counts_summary_and_reset() -> None:
    c = BadImageCounter(max_bad_fraction=0.5)
    for _ in range(3):
        c.record_ok()
    c.record_bad("a.jpg", "missing")
    s = c.summary()
    assert (s.seen, s.bad) == (4, 1)
    assert s.fraction == pytest.approx(0.25)
    assert s.examples == ["a.jpg (missing)"]
    buf = io.StringIO()
    out = c.end_epoch(file=buf)
    assert out.bad == 1 and "1 of 4 images" in buf.getvalue() and "a.jpg" in buf.getvalue()
    assert (c.seen, c.bad) == (0, 0)  # reset for the next epoch


def test_quiet_when_nothing_bad() -> None:
    c = BadImageCounter()
    c.record_ok()
    buf = io.StringIO()
    c.end_epoch(file=buf)
    assert buf.getvalue() == ""


def test_end_epoch_raises_over_fraction_naming_files() -> None:
    c = BadImageCounter(max_bad_fraction=0.1)  # no total: no early stop below min_seen
    for _ in range(5):
        c.record_ok()
    c.record_bad("broken.png", "OSError")
    with pytest.raises(DataError, match="broken.png"):
        c.end_epoch(file=io.StringIO())


def test_early_stop_with_known_total() -> None:
    c = BadImageCounter(max_bad_fraction=0.1, total=20)
    c.record_bad("x1.jpg")
    c.record_bad("x2.jpg")  # 2 <= 0.1 * 20
    with pytest.raises(DataError, match="x1.jpg"):
        c.record_bad("x3.jpg")  # 3 > 2: the epoch cannot end under the limit


def test_examples_are_capped() -> None:
    c = BadImageCounter(max_bad_fraction=1.0)
    for i in range(20):
        c.record_bad(f"f{i}.jpg")
    assert len(c.summary().examples) == 5 and c.bad == 20


def _worker(counter: BadImageCounter, n_ok: int, bad_name: str) -> None:
    for _ in range(n_ok):
        counter.record_ok()
    counter.record_bad(bad_name)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_counts_shared_with_worker_processes(method: str) -> None:
    c = BadImageCounter(max_bad_fraction=1.0)
    ctx = multiprocessing.get_context(method)
    procs = [ctx.Process(target=_worker, args=(c, 3, f"w{i}.jpg")) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert (c.seen, c.bad) == (8, 2)
    assert sorted(c.summary().examples) == ["w0.jpg", "w1.jpg"]


def test_copy_is_private() -> None:
    c = BadImageCounter()
    c.record_bad("a")
    d = copy.deepcopy(c)
    d.record_ok()
    assert (d.seen, d.bad) == (2, 1) and (c.seen, c.bad) == (1, 1)


def test_end_epoch_report_finds_counter_through_subset() -> None:
    import torch.utils.data as tud

    class DS(tud.Dataset):
        def __init__(self) -> None:
            self.bad_images = BadImageCounter(max_bad_fraction=0.0)

        def __len__(self) -> int:
            return 1

    ds = DS()
    ds.bad_images.record_bad("z.jpg")
    with pytest.raises(DataError, match="z.jpg"):
        end_epoch_report(tud.Subset(ds, [0]), file=io.StringIO())
    assert end_epoch_report(object()) is None


def test_read_image_rejects_garbage(tmp_path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(OSError):
        read_image(bad)
    with pytest.raises(OSError):
        read_image(tmp_path / "missing.jpg")
