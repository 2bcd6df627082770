"""The ``clipspace analyze`` commands as a function: embeddings in, a dict (and figures) out;
``tree.json_ready`` turns it into JSON without NaN (null, with a note). Used by the CLI and by the
report/demo code. Bad input (NaN / Inf rows, fewer than 2 pairs, no dimensions, negative
``max_k``, an unknown ``close-gap`` method, ``drop_k`` outside 1..D-1, ``ideal-words`` without
factor labels) is a DataError before any work (``check_inputs``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from clipspace.analysis import plots as P
from clipspace.analysis._arrays import dense_labels, normalize_rows, to_tensor
from clipspace.analysis.ablation import ablate_dims
from clipspace.analysis.close_gap import METHODS, close_gap
from clipspace.analysis.dims import dims_analysis
from clipspace.analysis.dims_plots import plot_close_gap, plot_dim_means, plot_dim_scatter
from clipspace.analysis.gap import gap_stats, geometric_gap, mean_difference, root_distances
from clipspace.analysis.moad import moad
from clipspace.analysis.neighbourhood import neighbourhood_test
from clipspace.data.embeddings_io import check_embeddings
from clipspace.errors import DataError
from clipspace.eval.retrieval import recall_at_k
from clipspace.geometry import sphere

ANALYSES = ("gap", "moad", "ablate-dims", "neighbourhood", "dims", "close-gap")
CLOSE_GAP_CHOICES = (*METHODS, "all")
NON_LABEL_KEYS = ("index", "caption_id", "caption_words", "source")


def _attr_keys(labels: Mapping[str, np.ndarray], object_key: str) -> list[str]:
    return [k for k in labels if k != object_key and k not in NON_LABEL_KEYS]


def _need(labels: Mapping[str, np.ndarray] | None, key: str, what: str) -> np.ndarray:
    if not labels or key not in labels:
        found = sorted(labels) if labels else []
        raise DataError(f"analyze {what}: needs label {key!r} (labels found: {found}); "
                        "pass --labels FILE or --label-key")
    return labels[key]


def label_notes(labels: Mapping[str, np.ndarray], keys: list[str]) -> list[str]:
    """Why a MOAD term is undefined (NaN, written as null): a label with one value has no pairs
    that differ in it; a label whose every value occurs once has no pairs that share one."""
    notes = []
    for k in keys:
        counts = np.unique(labels[k], return_counts=True)[1]
        if len(counts) < 2:
            notes.append(f"label {k!r} has one value only: no pairs differ in it, so its MOAD "
                         "terms are undefined (null)")
        elif counts.max() < 2:
            notes.append(f"label {k!r} has a different value in every row: no pairs share one, "
                         "so its MOAD terms are undefined (null)")
    return notes


def moad_both(img: Any, txt: Any, labels: Mapping[str, np.ndarray], object_key: str = "digit"
              ) -> dict[str, Any]:
    """MOAD of the image and the text embeddings; ``moad`` = their mean (the Two Effects paper
    reports object bias per modality; which aggregate it plots is unverified). ``notes`` says
    why a value is undefined (NaN)."""
    obj = _need(labels, object_key, "moad")
    attrs = {k: labels[k] for k in _attr_keys(labels, object_key)}
    if not attrs:
        raise DataError(f"analyze moad: no attribute labels besides {object_key!r} "
                        f"(labels found: {sorted(labels)})")
    mi = moad(img, obj, attrs)
    mt = moad(txt, obj, attrs)
    out = {"moad": (mi["moad"] + mt["moad"]) / 2, "moad_image": mi["moad"],
           "moad_text": mt["moad"], "per_slot_image": mi["per_slot"],
           "per_slot_text": mt["per_slot"]}
    notes = label_notes(labels, [object_key, *attrs])
    return {**out, "notes": notes} if notes else out


def ablation_metric(labels: Mapping[str, np.ndarray] | None, label_key: str = "digit"):
    """Performance callback on reduced embeddings: retrieval R@1 (caption groups when
    ``caption_id`` is known) and, with class labels, nearest-text-class-mean accuracy (a
    zero-shot proxy that needs no text encoder; label ids re-indexed to 0..K-1)."""
    groups = None if not labels or "caption_id" not in labels else labels["caption_id"]
    y = None if not labels or label_key not in labels else dense_labels(labels[label_key])[0][0]

    def metric(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
        r = recall_at_k(a, b, ks=(1,), img_groups=groups, txt_groups=groups)
        out = {"i2t_r1": r["i2t_r1"], "t2i_r1": r["t2i_r1"]}
        if y is not None:
            yt = torch.from_numpy(y)
            c = int(yt.max()) + 1
            means = torch.zeros(c, b.shape[1], dtype=b.dtype).index_add_(0, yt, b)
            pred = (a @ normalize_rows(means).T).argmax(1)
            out[f"{label_key}_acc"] = float((pred == yt).float().mean())
        return out

    return metric


def check_inputs(what: str, img: Any, txt: Any, labels: Mapping[str, np.ndarray] | None,
                 max_k: int = 0) -> None:
    """DataError unless the analysis can run: a known ``what``; two (N, D) sets, N >= 2, D >= 1,
    no NaN / Inf (how many rows otherwise); labels of N rows; ``max_k`` >= 0."""
    if what not in ANALYSES:
        raise DataError(f"unknown analysis {what!r}; choose from {list(ANALYSES)}")
    check_embeddings(img, "image embeddings")
    check_embeddings(txt, "text embeddings")
    if img.shape != txt.shape:
        raise DataError(f"image embeddings {tuple(img.shape)} and text embeddings "
                        f"{tuple(txt.shape)} differ in shape")
    n = img.shape[0]
    if n < 2:
        raise DataError(f"analyze {what}: needs at least 2 embedding pairs, got {n}")
    for k, v in (labels or {}).items():
        if len(v) != n:
            raise DataError(f"label {k!r} has {len(v)} rows, embeddings have {n}")
    if what == "ablate-dims":
        check_max_k(max_k)


def factor_labels(labels: Mapping[str, np.ndarray] | None, object_key: str = "digit"
                  ) -> dict[str, np.ndarray]:
    """The factors of the ideal words: the object label and every attribute label (not
    ``NON_LABEL_KEYS``); empty without labels."""
    if not labels:
        return {}
    keys = ([object_key] if object_key in labels else []) + _attr_keys(labels, object_key)
    return {k: labels[k] for k in keys}


def check_close_gap(method: str, drop_k: int, dim: int | None = None,
                    labels: Mapping[str, np.ndarray] | None = None, object_key: str = "digit"
                    ) -> None:
    """DataError unless ``method`` is in ``CLOSE_GAP_CHOICES``, ``drop_k`` (``--drop-k``) is
    >= 1 (and < ``dim`` when known) and ``ideal-words`` has factor labels (when ``labels`` is
    given; ``all`` then skips it with a note)."""
    if method not in CLOSE_GAP_CHOICES:
        raise DataError(f"analyze close-gap: --method must be one of {list(CLOSE_GAP_CHOICES)}, "
                        f"got {method!r}")
    if drop_k < 1 or (dim is not None and method in ("drop", "all") and drop_k >= dim):
        upper = "" if dim is None else f"..{dim - 1}"
        raise DataError(f"analyze close-gap: --drop-k (drop_k) must be in 1{upper}, got {drop_k}")
    if method == "ideal-words" and labels is not None and not factor_labels(labels, object_key):
        found = sorted(labels) if labels else []
        raise DataError("analyze close-gap --method ideal-words: needs factor labels (the "
                        f"object label {object_key!r} or attribute labels; labels found: "
                        f"{found}); pass --labels FILE or --label-key")


def check_max_k(max_k: int) -> None:
    """DataError unless ``max_k`` (``--max-k``, dimensions dropped: k = 0..max_k) is >= 0."""
    if max_k < 0:
        raise DataError(f"analyze ablate-dims: --max-k (max_k) must be >= 0, got {max_k}")


def _gap(img: Any, txt: Any, labels: Mapping[str, np.ndarray] | None, label_key: str,
         plots: Path | None, geometry: ModuleType, curv: float) -> dict[str, Any]:
    out: dict[str, Any] = dict(gap_stats(img, txt))  # the paper's cosine figures
    out["geometric"] = geometric_gap(img, txt, geometry, curv)
    if plots:
        dists = root_distances(img, txt, geometry, curv)
        out["figures"] = [
            str(P.plot_root_distance(dists, plots / "root_distance.png")),
            str(P.plot_mean_difference(mean_difference(img, txt).numpy(),
                                       plots / "mean_difference.png")),
        ]
        if labels and "caption_words" in labels and len(np.unique(labels["caption_words"])) > 1:
            out["figures"].append(str(_by_length(img, txt, labels, label_key, plots)))
    return out


def _ablate(img: Any, txt: Any, labels: Mapping[str, np.ndarray] | None, label_key: str,
            plots: Path | None, max_k: int) -> dict[str, Any]:
    curve = ablate_dims(img, txt, ks=range(max_k + 1),
                        metric_fn=ablation_metric(labels, label_key))
    out: dict[str, Any] = {**curve, "l2m": curve["l2m"][0], "rmg": curve["rmg"][0]}
    if plots:
        out["figures"] = [str(P.plot_ablation(curve, plots / "ablation.png"))]
    return out


def _dims(img: Any, txt: Any, plots: Path | None, seed: int) -> dict[str, Any]:
    out = dims_analysis(img, txt, seed=seed)
    if plots:
        diff = np.asarray(out["mean_image"]) - np.asarray(out["mean_text"])
        out["figures"] = [
            str(plot_dim_means(out["mean_image"], out["mean_text"], plots / "dim_means.png",
                               mark=out["pair"])),
            str(plot_dim_scatter(img, txt, out["pair"], plots / "dim_scatter.png", seed=seed)),
            str(P.plot_mean_difference(diff, plots / "mean_difference.png")),
        ]
    return out


def _close_gap(img: Any, txt: Any, labels: Mapping[str, np.ndarray] | None, label_key: str,
               plots: Path | None, method: str, drop_k: int) -> dict[str, Any]:
    factors = factor_labels(labels, label_key)
    methods = list(METHODS) if method == "all" else [method]
    notes = []
    if not factors and "ideal-words" in methods:
        methods.remove("ideal-words")
        notes.append("ideal-words skipped: no factor labels (object / attribute labels)")
    out = close_gap(img, txt, methods, k=drop_k, factors=factors or None,
                    metric_fn=ablation_metric(labels, label_key))
    if notes:
        out["notes"] = notes
    if plots:
        out["figures"] = [str(plot_close_gap(out, plots / "close_gap.png"))]
    return out


def run_analysis(
    what: str,
    img: Any,
    txt: Any,
    labels: Mapping[str, np.ndarray] | None = None,
    plot_dir: str | Path | None = None,
    label_key: str = "digit",
    max_k: int = 20,
    geometry: ModuleType = sphere,
    curv: float = 1.0,
    method: str = "all",
    drop_k: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """One analysis (``gap``, ``moad``, ``ablate-dims``, ``neighbourhood``, ``dims``,
    ``close-gap``) as a dict.

    ``dims``: the per-dimension view (``analysis.dims``; ``seed`` draws the random-dimension
    baseline). ``close-gap``: ``method`` (``drop``, ``shift``, ``ideal-words`` or ``all``; see
    ``analysis.close_gap``; ``drop_k`` dimensions for drop), gap and ``ablation_metric``
    performance before and after.

    ``geometry``/``curv``: the space the points live in, for the root-distance figure of
    ``gap`` (distances to the shared [ROOT] in that geometry's metric). Bad input (see
    ``check_inputs``) is a DataError before any work. Values may be NaN where a metric is
    undefined (``notes`` says why); ``json_ready`` makes the dict safe to write as JSON."""
    check_inputs(what, img, txt, labels, max_k)
    if what == "close-gap":
        check_close_gap(method, drop_k, int(img.shape[1]), labels or {}, label_key)
    plots = Path(plot_dir) if plot_dir else None
    out: dict[str, Any] = {"analysis": what, "n": int(img.shape[0]), "dim": int(img.shape[1])}
    if what == "gap":
        out.update(_gap(img, txt, labels, label_key, plots, geometry, curv))
    elif what == "moad":
        out.update(moad_both(img, txt, labels or {}, label_key))
    elif what == "ablate-dims":
        out.update(_ablate(img, txt, labels, label_key, plots, max_k))
    elif what == "neighbourhood":
        y = _need(labels, label_key, "neighbourhood")
        out.update(neighbourhood_test(img, txt, y))
    elif what == "dims":
        out.update(_dims(img, txt, plots, seed))
    elif what == "close-gap":
        out.update(_close_gap(img, txt, labels, label_key, plots, method, drop_k))
    return out


def _by_length(img: Any, txt: Any, labels: Mapping[str, np.ndarray], object_key: str,
               plots: Path) -> Path:
    words = labels["caption_words"]
    lengths = sorted(int(v) for v in np.unique(words))
    vals: dict[str, list[float]] = {"rmg": [], "l2m": []}
    xi, xt = to_tensor(img), to_tensor(txt)
    for length in lengths:
        m = torch.from_numpy(words == length)
        if int(m.sum()) < 2:
            vals["rmg"].append(float("nan"))
            vals["l2m"].append(float("nan"))
            continue
        g = gap_stats(xi[m], xt[m])
        vals["rmg"].append(g["rmg"])
        vals["l2m"].append(g["l2m"])
    return P.plot_by_caption_length(lengths, vals, plots / "gap_by_caption_length.png")
