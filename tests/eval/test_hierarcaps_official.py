"""clipspace's HierarCaps metrics against the official evaluator.

The fixture ``data/hierarcaps_official.{json,npz}`` holds fixed embeddings for the first 50 rows
of the HierarCaps test CSV in six scenarios (a random tiny transformers CLIP on the real images;
smooth synthetic points; exact +-1 grid points with many exact ties; each also with every third
row showing the previous row's image), and the precision, recall and tau_d that the official
evaluator computed on them: TAU-VAILab/hierarcaps at commit
ba22b8914db10973e38d2c03f08bb4dce7ba118e, code/evaluation/hierarchical_retrieval.py,
``HCEvaluator.run`` run unmodified, with the CLIP model and processor replaced by look-ups into
these arrays (the JSON's "how" says exactly how). These tests fail if clipspace's radius,
thresholds, tie rule, candidate set, multi-reference precision / recall or tau_d drift from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipspace.data.hierarcaps import HierarCapsImages, read_hierarcaps_test
from clipspace.eval import SuiteContext, embed, evaluate_embeddings
from clipspace.eval.hierarchy import (
    hierarcaps_metrics,
    hierarchy_radius,
    root_distance,
    tau_d_rows,
    threshold_predictions,
)
from clipspace.geometry import euclidean, sphere

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "hierarcaps"
FIXTURE = json.loads((DATA / "hierarcaps_official.json").read_text())
ARRAYS = np.load(DATA / "hierarcaps_official.npz")
SCENARIOS = sorted(FIXTURE["scenarios"])
TOL = 1e-12  # the numbers are means of the same discrete counts: only summation order differs


def scenario(name: str) -> dict:
    """Texts, chains, per-row image keys and the points (as float32 tensors) of a scenario."""
    sc = FIXTURE["scenarios"][name]
    files = sc["image_files"]
    unique = list(dict.fromkeys(files))
    return {
        "texts": FIXTURE["texts"], "chains": FIXTURE["chains"], "files": files,
        "unique_files": unique, "expected": sc["expected"],
        "text": torch.from_numpy(ARRAYS[f"{name}.text"]),
        "image": torch.from_numpy(ARRAYS[f"{name}.image"]),
        "root": torch.from_numpy(ARRAYS[f"{name}.root"]),
        "row_image": [unique.index(f) for f in files],
    }


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Similarity of L2-normalised vectors, as the official evaluator scores."""
    return (a / a.norm(dim=-1, keepdim=True)) @ (b / b.norm(dim=-1, keepdim=True)).T


def assert_official(got: dict, expected: dict) -> None:
    for key in ("precision", "recall", "tau_d"):
        assert got[key] == pytest.approx(expected[key], abs=TOL), key


def reference_hierarcaps(row_points: torch.Tensor, row_texts: list[list[str]],
                         image_points: torch.Tensor, image_rows: list[list[int]],
                         root: torch.Tensor, steps: int = 50) -> dict:
    """The protocol from its definition, one image and one threshold at a time, over all 4N
    (row, level) captions with their repeats (how the official evaluator lays them out):
    row_points (N, L, D) raw text features, image_points (U, D), image_rows[u] = the rows that
    show image u. Slow; here to check the vectorised code on the full shared data."""
    n, depth, _ = row_points.shape
    unit = row_points / row_points.norm(dim=-1, keepdim=True)
    radius = (unit - root / root.norm()).norm(dim=-1).reshape(-1)  # float32, (N L,)
    flat_texts = [t for texts in row_texts for t in texts]
    lo, hi = radius.min().item(), radius.max().item()
    # one row per threshold; a float32 tensor against a Python float compares in float32
    allowed = torch.stack([radius <= t for t in np.linspace(lo, hi, steps)])
    precisions, recalls = [], []
    for u, rows in enumerate(image_rows):
        v = image_points[u] / image_points[u].norm()
        score = unit.reshape(n * depth, -1) @ v
        # argmax gives the first maximum, in (row, level) order
        best = torch.where(allowed, score, torch.tensor(-np.inf)).argmax(1).tolist()
        chosen: list[str] = []
        for j in best:
            if not chosen or chosen[-1] != flat_texts[j]:
                chosen.append(flat_texts[j])
        refs = [row_texts[r] for r in rows]
        predicted = set(chosen)
        truth = {t for ref in refs for t in ref}
        precisions.append(len(predicted & truth) / len(predicted))
        recalls.append(np.mean([any(ref[k] in predicted for ref in refs) for k in range(depth)]))
    taus = []
    for r in radius.reshape(n, depth):
        perm = torch.argsort(r).tolist()
        inversions = sum(perm[a] > perm[b] for a in range(depth) for b in range(a + 1, depth))
        taus.append(1 - 4 * inversions / (depth * (depth - 1)))
    return {"precision": float(np.mean(precisions)), "recall": float(np.mean(recalls)),
            "tau_d": float(np.mean(taus))}


@pytest.mark.parametrize("name", SCENARIOS)
def test_metrics_equal_official(name: str) -> None:
    sc = scenario(name)
    rho = hierarchy_radius(sc["text"], sphere, 1.0, sc["root"])
    img = sc["image"][sc["row_image"]]
    got = hierarcaps_metrics(img, sc["text"], sc["texts"], rho, sc["chains"], cosine,
                             groups=sc["files"])
    assert got["images"] == len(sc["unique_files"]) and got["n"] == len(sc["chains"])
    assert_official(got, sc["expected"])


@pytest.mark.parametrize("name", SCENARIOS)
def test_reference_equals_official(name: str) -> None:
    """The slow reference of the shared-data test is itself pinned to the official outputs."""
    sc = scenario(name)
    index = {t: i for i, t in enumerate(sc["texts"])}
    rows = sc["text"][[[index[t] for t in ch] for ch in sc["chains"]]]
    image_rows: list[list[int]] = [[] for _ in sc["unique_files"]]
    for r, u in enumerate(sc["row_image"]):
        image_rows[u].append(r)
    got = reference_hierarcaps(rows, sc["chains"], sc["image"], image_rows, sc["root"])
    assert_official(got, sc["expected"])


def test_geodesic_radius_would_disagree() -> None:
    """The known difference: thresholds spaced along the angle, not the chord, change P / R."""
    sc = scenario("smooth")
    unit = sc["text"] / sc["text"].norm(dim=-1, keepdim=True)
    angle = root_distance(unit, sphere, 1.0, sc["root"])
    got = hierarcaps_metrics(sc["image"][sc["row_image"]], sc["text"], sc["texts"], angle,
                             sc["chains"], cosine, groups=sc["files"])
    assert got["precision"] != pytest.approx(sc["expected"]["precision"], abs=1e-6)


# --- the hierarchy suite end to end (HierarCaps reader, embed, candidates, root "") ---------


class FixedPoints:
    """A sphere "model" returning the fixture's points: text tokens are indices into a text
    table, an image's pixel value is the index of its unique image."""

    geometry = sphere

    def __init__(self, texts: list[str], text: torch.Tensor, root: torch.Tensor,
                 image: torch.Tensor) -> None:
        self.index = {t: i for i, t in enumerate(texts)}
        self.index[""] = len(texts)
        raw = torch.cat([text, root[None]])
        self.text = raw / raw.norm(dim=-1, keepdim=True)
        self.image = image / image.norm(dim=-1, keepdim=True)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([[self.index[t]] for t in texts])

    def curv(self) -> torch.Tensor:
        return torch.tensor(1.0)

    def encode_text(self, tokens: torch.Tensor, tangent: bool = False) -> torch.Tensor:
        return self.text[tokens[:, 0]]

    def encode_image(self, images: torch.Tensor, tangent: bool = False) -> torch.Tensor:
        return self.image[images[:, 0].long()]

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b.T


def _pixel_value(image: Image.Image) -> torch.Tensor:
    return torch.tensor([float(np.asarray(image.convert("L"))[0, 0])])


def write_hierarcaps(folder: Path, chains: list[list[str]], files: list[str]) -> Path:
    """A test CSV for ``chains`` whose rows point at ``files``; image k of the unique files is a
    4x4 PNG of grey level k."""
    import csv

    (folder / "images").mkdir(parents=True)
    for k, name in enumerate(dict.fromkeys(files)):
        Image.new("L", (4, 4), color=k).save(folder / "images" / name, format="PNG")
    path = folder / "test.csv"
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "captions", "image_url"])
        for i, (chain, name) in enumerate(zip(chains, files, strict=True)):
            out.writerow([i, " => ".join(chain), f"http://images.cocodataset.org/val2014/{name}"])
    return path


@pytest.mark.parametrize("name", ["real", "smooth_dup", "grid_dup"])
def test_hierarchy_suite_equals_official(name: str, tmp_path: Path) -> None:
    sc = scenario(name)
    csv_path = write_hierarcaps(tmp_path, sc["chains"], sc["files"])
    model = FixedPoints(sc["texts"], sc["text"], sc["root"], sc["image"])
    dataset = HierarCapsImages(csv_path, tmp_path / "images", transform=_pixel_value)
    emb = embed(model, dataset, model.tokenize, batch_size=16, progress=False)
    ctx = SuiteContext(model=model, emb=emb, tokenizer=model.tokenize, hierarchy_root="empty")
    got = evaluate_embeddings(ctx, ["hierarchy"])["hierarchy"]
    assert got["candidates"] == len(sc["texts"]) and got["images"] == len(sc["unique_files"])
    assert got["root"] == "empty"
    assert_official(got, sc["expected"])


# --- the single rules, on hand-made or random cases ------------------------------------------


def test_thresholds_compare_in_the_radius_dtype() -> None:
    """A float32 radius equal to a threshold rounded to float32 is inside it (the official code
    compares float32 radii with Python floats, in float32), even when the float64 threshold is
    a hair below it; ties in similarity go to the first candidate."""
    n = 50
    lo, hi = 0.25, 1.75
    levels = np.linspace(lo, hi, n)
    k = next(i for i in range(1, n - 1) if float(np.float32(levels[i])) > levels[i])
    rho = torch.tensor([lo, hi, float(np.float32(levels[k])), 1.0], dtype=torch.float32)
    sims = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.5, 0.9, 0.5, 0.5]])
    pred = threshold_predictions(sims, rho, n)
    assert pred[0, k].item() == 2  # included at threshold k although levels[k] < rho[2]
    assert pred[0, k - 1].item() == (3 if rho[3] <= levels[k - 1] else 0)
    assert pred[1, 0].item() == 0 and pred[1, -1].item() == 1


def test_threshold_predictions_match_masked_argmax() -> None:
    """Random cases with many exact ties: the prefix code equals a masked first-argmax per
    threshold, with thresholds compared as Python floats against float32 radii."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        m = int(torch.randint(5, 60, (1,), generator=gen))
        rho = torch.randint(0, 6, (m,), generator=gen).float() / 7
        sims = torch.randint(0, 4, (8, m), generator=gen).float()
        got = threshold_predictions(sims, rho, 13)
        lo, hi = rho.min().item(), rho.max().item()
        for j, t in enumerate(np.linspace(lo, hi, 13)):
            masked = torch.where(rho <= t, sims, torch.tensor(-np.inf))
            assert got[:, j].tolist() == masked.argmax(1).tolist()


def test_tau_d_counts_tied_radii_as_in_order() -> None:
    from scipy.stats import kendalltau

    radii = np.array([[1, 2, 3, 4], [4, 3, 2, 1], [1, 1, 2, 3], [2, 2, 2, 2], [3, 1, 3, 1],
                      [0.5, 0.2, 0.9, 0.9]], dtype=np.float32)
    official = [kendalltau(torch.argsort(torch.from_numpy(r)).numpy(), [1, 2, 3, 4]).statistic
                for r in radii]
    assert tau_d_rows(radii) == pytest.approx(official, abs=1e-12)
    assert tau_d_rows(radii)[2] == 1.0 and tau_d_rows(radii)[3] == 1.0


def test_multi_reference_image() -> None:
    """Two rows on one image: P over the union of both chains, R per level over either chain;
    both averaged over images, tau_d over rows."""
    texts = ["a", "b", "c", "d", "x", "y"]
    rho = torch.tensor([1.0, 2.0, 3.0, 4.0, 1.5, 2.5])
    chains = [["a", "b", "c", "d"], ["x", "b", "y", "d"], ["x", "y", "c", "d"]]
    table = torch.tensor([[0.9, 0.1, 0.97, 0.0, 0.95, 0.2],  # image 0 (rows 0 and 1)
                          [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]])   # image 1 (row 2)

    def sim(img: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        return table[img.long().reshape(-1)]

    img = torch.tensor([[0.0], [0.0], [1.0]])
    out = hierarcaps_metrics(img, torch.zeros(6, 1), texts, rho, chains, sim, n_thresholds=4,
                             groups=["p", "p", "q"], return_predictions=True)
    # thresholds 1, 2, 3, 4: image 0 -> a, x, c, c; image 1 -> a, a (first of the
    # ties), a, d
    assert out["predictions"] == [["a", "x", "c"], ["a", "d"]]
    assert out["images"] == 2 and out["n"] == 3
    assert out["precision"] == pytest.approx((3 / 3 + 1 / 2) / 2)
    # image 0: level 1 (a or x) yes, level 2 (b) no, level 3 (c or y) yes, level 4 (d) no
    assert out["recall"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    single = hierarcaps_metrics(img, torch.zeros(6, 1), texts, rho, chains, sim, n_thresholds=4)
    assert single["images"] == 3
    assert single["precision"] == pytest.approx((2 / 3 + 1 / 3 + 1 / 2) / 3)


def test_hierarchy_radius_rule() -> None:
    x = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    root = torch.tensor([0.0, 1.0])
    chord = hierarchy_radius(x, sphere, 1.0, root)
    assert chord.tolist() == pytest.approx([np.sqrt((0.6) ** 2 + 0.2 ** 2), 0.0], abs=1e-6)
    assert hierarchy_radius(x, euclidean, 1.0, root).tolist() == pytest.approx(
        root_distance(x, euclidean, 1.0, root).tolist())


# --- the real shared data (skipped where /work/shared is absent) -----------------------------


def _shared() -> Path:
    if not (SHARED / "hierarcaps_test.csv").is_file():
        pytest.skip("shared HierarCaps data not present")
    return SHARED


def test_fixture_rows_are_the_shared_test_rows() -> None:
    rows = read_hierarcaps_test(_shared() / "hierarcaps_test.csv", _shared() / "images")
    n = len(FIXTURE["chains"])
    assert [r.captions for r in rows[:n]] == FIXTURE["chains"]
    names = [r.image_url.rsplit("/", 1)[-1] for r in rows[:n]]
    assert FIXTURE["scenarios"]["real"]["image_files"] == names
    assert all(r.image_path is not None for r in rows[:n])


def test_shared_data_suite_equals_reference(tmp_path: Path, monkeypatch) -> None:
    """All 1,000 shared test images through a random tiny transformers CLIP, ``embed`` and the
    hierarchy suite (root ""), against the slow reference on the very same points."""
    data = _shared()
    pytest.importorskip("transformers")
    import clipspace.eval.suites as suites
    from clipspace.eval import load_eval_dataset
    from clipspace.models import load_model_and_tokenizer
    from tests.helpers.hf import make_tiny_hf_clip

    rows = read_hierarcaps_test(data / "hierarcaps_test.csv", data / "images")
    chains = [r.captions for r in rows]
    model, tok = load_model_and_tokenizer(
        make_tiny_hf_clip(tmp_path / "clip", [c for ch in chains for c in ch]))
    model.eval()
    seen: dict[str, torch.Tensor] = {}
    encode = suites.encode_texts

    def recording(model, tokenizer, texts, *args, **kwargs):
        out = encode(model, tokenizer, texts, *args, **kwargs)
        seen.update(zip(texts, out, strict=True))
        return out

    monkeypatch.setattr(suites, "encode_texts", recording)
    dataset = load_eval_dataset(f"hierarcaps:{data / 'hierarcaps_test.csv'}::{data / 'images'}",
                                model)
    emb = embed(model, dataset, tok, progress=False)
    ctx = SuiteContext(model=model, emb=emb, tokenizer=tok, hierarchy_root="empty")
    res = {"hierarchy": evaluate_embeddings(ctx, ["hierarchy"])["hierarchy"]}
    got = res["hierarchy"]
    assert got["n"] == len(rows) and got["images"] == len(rows)
    row_points = torch.stack([torch.stack([seen[c] for c in ch]) for ch in chains])
    ref = reference_hierarcaps(row_points, chains, emb.image, [[i] for i in range(len(rows))],
                               seen[""])
    assert_official(got, ref)
