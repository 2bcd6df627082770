"""MAD scenes: generator (exact boxes, captions, determinism, bad input, atomicity), reader,
box crops (degenerate boxes included), collate and the CLI. Built on the hand-written MAD layout
(``tests.helpers.mad.write_mad``: random pixels, no dependency on the MAD generator)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clipspace.cli import main
from clipspace.data import mad_scenes_generate as G
from clipspace.data import mad_schema as S
from clipspace.data.captions import parse_caption
from clipspace.data.mad import read_metadata
from clipspace.data.mad_scenes import MadScenes, SceneCollate, collate_scenes, crop_boxes
from clipspace.errors import DataError
from tests.helpers.mad import write_mad

N_TRAIN, N_TEST, CANVAS, K = 120, 40, 56, 2


@pytest.fixture(scope="module")
def mad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mad(tmp_path_factory.mktemp("scenes") / "mad", n_digits=6, test_digits=2)


@pytest.fixture(scope="module")
def scenes(mad: Path) -> Path:
    return G.generate_mad_scenes(mad, mad.parent / "scenes", seed=3, num_train=N_TRAIN,
                                 num_test=N_TEST, num_attrs=K, progress=False)


def _boxes(root: Path) -> np.ndarray:
    """boxes.csv integer columns (all but the caption)."""
    return np.loadtxt(root / "boxes.csv", delimiter=",", skiprows=1, dtype=np.int64,
                      usecols=range(len(G.BOX_COLUMNS) - 1), ndmin=2)


def _read(path: Path) -> list[list[str]]:
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))[1:]


def test_resize_matches_pil_bilinear() -> None:
    from PIL import Image

    x = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 3), dtype=np.uint8)
    np.testing.assert_array_equal(G.resize_digits(x, 28), x)
    for side in (14, 19, 27):
        pil = np.stack([np.asarray(Image.fromarray(a).resize((side, side), Image.BILINEAR))
                        for a in x])
        got = G.resize_digits(x, side)
        assert got.shape == (3, side, side, 3)
        assert np.abs(got.astype(int) - pil).max() <= 1  # PIL rounds in fixed point


def test_boxes_exact_disjoint_and_inside(mad: Path, scenes: Path) -> None:
    images = np.load(scenes / "images.npy")
    src = np.load(mad / "images.npy")
    assert images.shape == (N_TRAIN + N_TEST, CANVAS, CANVAS, 3) and images.dtype == np.uint8
    boxes = _boxes(scenes)
    rebuilt = np.zeros_like(images)
    for scene in range(len(images)):
        b = boxes[boxes[:, 0] == scene]
        assert 1 <= len(b) <= 4 and b[:, 1].tolist() == list(range(len(b)))
        x0, y0, x1, y1 = b[:, 2], b[:, 3], b[:, 4], b[:, 5]
        side = x1 - x0
        assert (side == y1 - y0).all() and (side >= 14).all() and (side <= 28).all()
        assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= CANVAS).all() and (y1 <= CANVAS).all()
        for i in range(len(b)):
            for j in range(i):
                sep = (x1[i] <= x0[j]) | (x1[j] <= x0[i]) | (y1[i] <= y0[j]) | (y1[j] <= y0[i])
                assert sep, (scene, b)
            digit = G.resize_digits(src[b[i, 6]][None], int(side[i]))[0]
            rebuilt[scene, y0[i] : y1[i], x0[i] : x1[i]] = digit
    # inside every box: the pasted, resized digit; outside all boxes: black background
    np.testing.assert_array_equal(images, rebuilt)


def test_splits_counts_and_captions(mad: Path, scenes: Path) -> None:
    meta = read_metadata(mad)
    split_of = dict(zip(meta["index"].tolist(), meta["split"].tolist()))
    labels = {k: dict(zip(meta["index"].tolist(), meta[k].tolist())) for k in S.LABEL_KEYS}
    scene_rows, box_rows = _read(scenes / "scenes.csv"), _read(scenes / "boxes.csv")
    assert [r[1] for r in scene_rows] == ["train"] * N_TRAIN + ["test"] * N_TEST
    counts = [int(r[2]) for r in scene_rows]
    assert set(counts) == {1, 2, 3, 4} and sum(counts) == len(box_rows)
    by_scene: dict[int, list[list[str]]] = {}
    for r in box_rows:
        by_scene.setdefault(int(r[0]), []).append(r)
    for row in scene_rows:
        index, split, caption = int(row[0]), row[1], row[3]
        objs = by_scene[index]
        assert caption == G.SCENE_JOIN.join(r[-1] for r in objs)
        named = sorted(parse_caption(p)["digit"] for p in caption.split(G.SCENE_JOIN))
        assert named == sorted(int(r[7]) for r in objs)  # exactly the digits present
        for r in objs:
            source = int(r[6])
            assert split_of[source] == split  # digits come from the scene's MAD split
            parsed = parse_caption(r[-1])
            assert len(parsed) == 1 + K and "digit" in parsed
            want = {k: labels[k][source] for k in S.LABEL_KEYS}
            assert parsed == {k: want[k] for k in parsed}
            assert [int(v) for v in r[7:13]] == [want[k] for k in S.LABEL_KEYS]
    manifest = __import__("json").loads((scenes / "manifest.json").read_text())
    assert manifest["format"] == G.FORMAT and manifest["seed"] == 3
    assert manifest["counts"]["boxes_train"] + manifest["counts"]["boxes_test"] == len(box_rows)


def test_deterministic(mad: Path, scenes: Path, tmp_path: Path) -> None:
    again = G.generate_mad_scenes(mad, tmp_path / "a", seed=3, num_train=N_TRAIN,
                                  num_test=N_TEST, num_attrs=K, progress=False)
    for name in ("images.npy", "scenes.csv", "boxes.csv", "manifest.json"):
        assert (again / name).read_bytes() == (scenes / name).read_bytes(), name
    other = G.generate_mad_scenes(mad, tmp_path / "b", seed=4, num_train=N_TRAIN,
                                  num_test=N_TEST, num_attrs=K, progress=False)
    assert (other / "images.npy").read_bytes() != (scenes / "images.npy").read_bytes()
    assert (other / "boxes.csv").read_text() != (scenes / "boxes.csv").read_text()


def test_crowded_canvas_stays_disjoint(mad: Path, tmp_path: Path) -> None:
    """A canvas where large digits rarely fit: objects are retried small or dropped, the boxes
    stay disjoint and ``num_boxes`` counts the boxes actually placed."""
    out = G.generate_mad_scenes(mad, tmp_path / "c", num_train=60, num_test=0, canvas=30,
                                min_side=14, max_side=28, progress=False)
    boxes = _boxes(out)
    counts = [int(r[2]) for r in _read(out / "scenes.csv")]
    assert counts == np.bincount(boxes[:, 0], minlength=60).tolist() and min(counts) >= 1
    for scene in np.unique(boxes[:, 0]):
        b = boxes[boxes[:, 0] == scene]
        assert (b[:, 4] <= 30).all() and (b[:, 5] <= 30).all()
        for i in range(len(b)):
            for j in range(i):
                assert (b[i, 4] <= b[j, 2]) | (b[j, 4] <= b[i, 2]) | (b[i, 5] <= b[j, 3]) | (
                    b[j, 5] <= b[i, 3])


def test_dataset_items_and_crops(mad: Path, scenes: Path) -> None:
    ds = MadScenes(scenes, split="test", crop_size=28)
    assert len(ds) == N_TEST and len(MadScenes(scenes, "all")) == N_TRAIN + N_TEST
    src = np.load(mad / "images.npy")
    boxes = _boxes(scenes)
    for i in (0, 7, N_TEST - 1):
        item = ds[i]
        assert item["image"].shape == (3, CANVAS, CANVAS) and item["image"].dtype == torch.float32
        k = len(item["box_texts"])
        assert item["boxes"].shape == (k, 4) and item["box_images"].shape == (k, 3, 28, 28)
        assert item["text"] == G.SCENE_JOIN.join(item["box_texts"])
        rows = boxes[boxes[:, 0] == item["index"]]
        assert item["boxes"].tolist() == rows[:, 2:6].tolist()
        assert item["box_digit"].tolist() == rows[:, 7].tolist()
        for (x0, y0, x1, y1), row in zip(item["boxes"].tolist(), rows):
            side = x1 - x0
            digit = torch.from_numpy(G.resize_digits(src[row[6]][None], side)[0])
            want = (digit.permute(2, 0, 1).float() / 255 - 0.5) / 0.5
            crop = crop_boxes(item["image"], torch.tensor([[x0, y0, x1, y1]]), side)[0]
            torch.testing.assert_close(crop, want)  # same size: the pasted digit exactly
            full = torch.from_numpy(src[row[6]]).permute(2, 0, 1).float() / 255 * 2 - 1
            # at the tower's size 28 the crop approximates the source MAD image
            rescaled = crop_boxes(item["image"], torch.tensor([[x0, y0, x1, y1]]), 28)[0]
            ref = F.interpolate(want[None], size=(28, 28), mode="bilinear", antialias=True)[0]
            torch.testing.assert_close(rescaled, ref)
            if side == 28:
                torch.testing.assert_close(rescaled, full)


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_degenerate_boxes_give_finite_crops(dtype: torch.dtype) -> None:
    image = (torch.rand(3, CANVAS, CANVAS) * 255).to(dtype)
    boxes = torch.tensor([
        [5, 5, 5, 9],        # empty (x1 == x0)
        [10, 10, 3, 2],      # inverted
        [0, 0, CANVAS, CANVAS],  # the full canvas
        [7, 8, 8, 9],        # one pixel
        [-10, -10, 100, 100],  # beyond the canvas
        [60, 60, 70, 70],    # entirely outside
    ])
    crops = crop_boxes(image, boxes, 16)
    assert crops.shape == (6, 3, 16, 16) and torch.isfinite(crops).all()
    x = image.float()
    torch.testing.assert_close(crops[3], x[:, 8:9, 7:8].expand(3, 16, 16))
    column = F.interpolate(x[None, :, 5:9, 5:6], size=(16, 16), mode="bilinear", antialias=True)
    torch.testing.assert_close(crops[0], column[0])  # widened to one pixel: the column x = 5
    torch.testing.assert_close(crops[1], x[:, 10:11, 10:11].expand(3, 16, 16))
    full = F.interpolate(x[None], size=(16, 16), mode="bilinear", antialias=True)[0]
    torch.testing.assert_close(crops[2], full)
    torch.testing.assert_close(crops[4], full)
    torch.testing.assert_close(crops[5], x[:, -1:, -1:].expand(3, 16, 16))
    assert crop_boxes(image, torch.zeros(0, 4), 16).shape == (0, 3, 16, 16)


def test_collate_box_scene(scenes: Path) -> None:
    ds = MadScenes(scenes, split="train", crop_size=12)
    items = [ds[i] for i in range(6)]
    batch = collate_scenes(items)
    counts = [len(it["box_texts"]) for it in items]
    m = sum(counts)
    assert batch["image"].shape == (6, 3, CANVAS, CANVAS)
    assert batch["box_image"].shape == (m, 3, 12, 12) and batch["boxes"].shape == (m, 4)
    assert batch["box_scene"].dtype == torch.long
    assert batch["box_scene"].tolist() == [b for b, c in enumerate(counts) for _ in range(c)]
    assert batch["caption"] == [it["text"] for it in items]
    assert batch["box_caption"] == [t for it in items for t in it["box_texts"]]
    torch.testing.assert_close(batch["box_image"], torch.cat([it["box_images"] for it in items]))
    for row, scene in enumerate(batch["box_scene"].tolist()):  # every box's text is in its scene's
        assert batch["box_caption"][row] in batch["caption"][scene].split(G.SCENE_JOIN)

    def tok(texts: list[str]) -> torch.Tensor:
        return torch.zeros(len(texts), 5, dtype=torch.long)

    tb = SceneCollate(tok)(items)
    assert tb["text"].shape == (6, 5) and tb["box_text"].shape == (m, 5)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_scenes)
    first = next(iter(loader))
    assert first["box_scene"].max() == 3


@pytest.mark.parametrize("kwargs, needle", [
    ({"max_objects": 0}, "--max-objects"),
    ({"max_objects": 5}, "--max-objects"),
    ({"canvas": 20}, "--canvas"),
    ({"min_side": 20, "max_side": 15}, "--min-side"),
    ({"min_side": 0}, "--min-side"),
    ({"num_attrs": 6}, "--num-attrs"),
    ({"num_train": -1}, "--num-train"),
    ({"num_train": 0, "num_test": 0}, "--num-train"),
])
def test_bad_settings_name_the_option(mad: Path, tmp_path: Path, kwargs: dict,
                                      needle: str) -> None:
    with pytest.raises(DataError, match=needle):
        G.generate_mad_scenes(mad, tmp_path / "o", progress=False, **kwargs)
    assert not list(tmp_path.iterdir())  # nothing written


def test_bad_mad_input(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope"):
        G.generate_mad_scenes(tmp_path / "nope", tmp_path / "o", progress=False)
    no_test = write_mad(tmp_path / "m", n_digits=2, test_digits=0)
    with pytest.raises(DataError, match="metadata.csv.*'test'"):
        G.generate_mad_scenes(no_test, tmp_path / "o", num_test=5, progress=False)
    (no_test / "images.npy").unlink()
    with pytest.raises(DataError, match="images.npy"):
        G.generate_mad_scenes(no_test, tmp_path / "o", num_test=0, progress=False)
    assert not (tmp_path / "o").exists()
    with pytest.raises(DataError, match="manifest.json"):
        MadScenes(no_test)  # a MAD directory is not a MAD-scenes directory
    with pytest.raises(DataError, match="split"):
        MadScenes(tmp_path, split="val")


def test_interrupted_run_leaves_nothing(mad: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(G, "_write_tables", boom)
    with pytest.raises(KeyboardInterrupt):
        G.generate_mad_scenes(mad, tmp_path / "o", num_train=10, num_test=0, progress=False)
    assert not list(tmp_path.iterdir())  # neither the output nor a partial directory


def test_cli(mad: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    base = ["data", "mad-scenes", "--mad", str(mad), "--out", str(out), "--no-progress"]
    assert main([*base, "--num-train", "8", "--num-test", "4", "--seed", "1"]) == 0
    assert "12 scenes" in capsys.readouterr().out
    stamp = (out / "boxes.csv").read_bytes()
    assert main([*base, "--num-train", "9"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "boxes.csv").read_bytes() == stamp
    assert main([*base, "--num-train", "9", "--num-test", "0", "--overwrite"]) == 0
    assert len(MadScenes(out)) == 9
    assert main([*base, "--overwrite", "--max-objects", "5"]) == 2
    assert "--max-objects" in capsys.readouterr().err
    bad = ["data", "mad-scenes", "--mad", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]
    assert main(bad) == 2
    assert "missing" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_scenes_spec_builds_scene_batches_with_the_scene_tokenizer(scenes: Path) -> None:
    """``scenes:DIR`` in a config: MadScenes batched by SceneCollate, text and box tokens from
    the directory's tokenizer, whose context holds the longest caption."""
    from clipspace.config import resolve
    from clipspace.data.build import build_loader, resolve_tokenizer, set_loader_epoch

    cfg = resolve("meru", {"data.train": f"scenes:{scenes}", "data.batch_size": 4})
    tok = resolve_tokenizer(cfg.data)
    captions = [r[-1] for r in _read(scenes / "scenes.csv") + _read(scenes / "boxes.csv")]
    raw = max(len(tok.backend.encode(c, add_special_tokens=False).ids) for c in captions)
    assert raw + 2 <= tok.context_length < raw + 2 + 8  # no caption is cut short
    assert tok.context_length % 8 == 0
    loader = build_loader(cfg.data.train, cfg.data, tok, image_size=28)
    set_loader_epoch(loader, 0, 0)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 28, 28)  # the scene resized to the tower's input
    m = len(batch["box_caption"])
    assert batch["box_image"].shape == (m, 3, 28, 28) and batch["box_text"].shape[0] == m
    assert batch["box_scene"].max() == 3 and batch["text"].shape == (4, tok.context_length)
