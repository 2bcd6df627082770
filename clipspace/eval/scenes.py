"""Scene evaluation on MAD scenes (issue 16; docs/evaluation.md, "Scenes: multi-object zero-shot
and part-whole entailment").

One embedding pass (``embed_scenes`` -> ``SceneEmbeddings``): every scene image and caption, and
every box crop and box caption, as points of the model's geometry. Two evaluations read it:

- ``multi_object_zeroshot``: which of the 10 digits are present in a scene. Each scene image is
  scored against the 10 digit prompts of MAD zero-shot (``data.zeroshot.mad_tasks``, templates
  shaped like the box captions) with ``eval.zeroshot.prompt_scores`` (the model's
  ``similarity``, larger = more likely present). Reported: per-class average precision and mAP
  over the classes present, top-1 "the top-scored digit is present", per-image F1 of the top-k
  digits with k = the number of distinct digits in the scene (oracle-k F1, the headline F1) and
  two threshold-free per-image numbers (the best F1 over all k, and the per-image average
  precision).
- ``part_whole_entailment``: is each scene inside the entailment cone of its box, for images and
  for texts, against random pairs. Direction as in HyCoCLIP (Pal et al. 2025, "box image entails
  image", "box text entails text"): the BOX is the apex (the generic concept, near the origin)
  and the whole scene the child, inside when ``ext_angle(box, scene) <= eta * half_aperture(box)``.
  ``apex="scene"`` checks the reverse (the issue's literal wording, MERU-style "the scene is more
  generic") for comparison. The sphere has no cones: ``{"skipped": ...}``.

``evaluate_scenes`` runs both on a MAD-scenes directory (or dataset).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from clipspace.data import mad_schema as S
from clipspace.data.mad_scenes import MadScenes, SceneCollate
from clipspace.data.zeroshot import mad_tasks
from clipspace.eval.datasets import dataset_tokenizer, innermost
from clipspace.eval.embed import encode_unique_texts, positions_of, random_subset
from clipspace.eval.retrieval import recall_at_k
from clipspace.eval.zeroshot import Template, default_ensemble, filled, prompt_scores

Tokenizer = Callable[[list[str]], Tensor]
NUM_DIGITS = len(S.DIGIT_WORDS)
APEXES: tuple[str, ...] = ("box", "scene")


@dataclass
class SceneEmbeddings:
    """Points of one evaluated MAD-scenes split (float32, CPU).

    ``image`` / ``text`` (N, D): each scene's image and caption; ``box_image`` / ``box_text``
    (M, D): each box's crop and caption; ``box_scene`` (M,) int64: the row of each box's scene;
    ``box_digit`` (M,) int64; ``digits`` (N, 10) bool: which digits each scene holds (from
    ``box_digit``); ``positions``: the scenes' rows in the dataset; ``num_attrs``: attribute
    words per box caption (shapes the zero-shot prompts; 0 when unknown)."""

    image: Tensor
    text: Tensor
    box_image: Tensor
    box_text: Tensor
    box_scene: np.ndarray
    box_digit: np.ndarray
    digits: np.ndarray
    positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    num_attrs: int = 0
    captions: list[str] = field(default_factory=list)
    box_captions: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.image.shape[0])


def digit_sets(box_scene: Any, box_digit: Any, num_scenes: int) -> np.ndarray:
    """(num_scenes, 10) bool multi-hot: ``out[s, d]`` iff some box of scene s shows digit d."""
    out = np.zeros((int(num_scenes), NUM_DIGITS), dtype=bool)
    out[np.asarray(box_scene, dtype=np.int64), np.asarray(box_digit, dtype=np.int64)] = True
    return out


def _model_device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def _num_attrs(dataset: Dataset) -> int:
    manifest = getattr(innermost(dataset), "manifest", None) or {}
    return int((manifest.get("settings") or {}).get("num_attrs", 0) or 0)


@torch.no_grad()
def embed_scenes(
    model: Any,
    dataset: Dataset,
    tokenizer: Tokenizer,
    max_samples: int = 0,
    batch_size: int = 256,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> SceneEmbeddings:
    """Embed every scene of a ``MadScenes`` dataset (or a seeded random subset of
    ``max_samples``, ``eval.embed.random_subset``), its boxes' crops and all captions, in eval
    mode (the model's mode is restored). Crops must already have the tower's input size
    (``MadScenes(crop_size=..., image_size=...)``; ``evaluate_scenes`` sets both)."""
    device = torch.device(device) if device is not None else _model_device(model)
    was_training = bool(getattr(model, "training", False))
    if hasattr(model, "eval"):
        model.eval()
    try:
        subset = random_subset(dataset, max_samples)
        loader = DataLoader(subset, batch_size=int(batch_size), shuffle=False,
                            collate_fn=SceneCollate())
        imgs: list[Tensor] = []
        boxes: list[Tensor] = []
        box_scene: list[Tensor] = []
        box_digit: list[Tensor] = []
        captions: list[str] = []
        box_captions: list[str] = []
        for batch in tqdm(loader, desc="embed scenes", disable=not progress, leave=False):
            offset = len(captions)
            imgs.append(model.encode_image(batch["image"].to(device)).float().cpu())
            for s in range(0, batch["box_image"].shape[0], int(batch_size)):
                crops = batch["box_image"][s : s + int(batch_size)].to(device)
                boxes.append(model.encode_image(crops).float().cpu())
            box_scene.append(batch["box_scene"] + offset)
            box_digit.append(batch["box_digit"])
            captions.extend(batch["caption"])
            box_captions.extend(batch["box_caption"])
        texts = encode_unique_texts(model, tokenizer, captions + box_captions, int(batch_size),
                                    device)
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    n = len(captions)
    scene_of = torch.cat(box_scene).numpy().astype(np.int64)
    digit = torch.cat(box_digit).numpy().astype(np.int64)
    return SceneEmbeddings(
        image=torch.cat(imgs, 0),
        text=texts[:n],
        box_image=torch.cat(boxes, 0),
        box_text=texts[n:],
        box_scene=scene_of,
        box_digit=digit,
        digits=digit_sets(scene_of, digit, n),
        positions=positions_of(subset, n),
        num_attrs=_num_attrs(dataset),
        captions=captions,
        box_captions=box_captions,
    )


# ---------------------------------------------------------------- multi-label metrics


def average_precision(scores: Any, labels: Any) -> float:
    """Average precision of one class: sum_n (R_n - R_{n-1}) P_n over the distinct score
    thresholds, largest first (sklearn's ``average_precision_score``; tied scores form one
    step). NaN when ``labels`` has no positive."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(bool)
    pos = int(y.sum())
    if pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each tie group
    tp = np.cumsum(y)[last].astype(np.float64)
    precision = tp / (last + 1)
    recall = tp / pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def multilabel_metrics(scores: Any, targets: Any) -> dict[str, Any]:
    """Multi-label metrics of (N, C) ``scores`` (larger = more likely present) against (N, C)
    bool ``targets``.

    - ``ap`` {class: AP} and ``map`` (their mean) over the classes with at least one positive;
      ``map_chance``: the mean prevalence of those classes (the AP of a random ranking);
    - ``top1``: fraction of images whose top-scored class is present;
    - ``f1`` (oracle-k F1, the headline): per image, predict the k top-scored classes, k = the
      number of true classes, F1 = 2|P & T| / (|P| + |T|) (= precision = recall, as |P| = |T|);
      mean over the images with at least one true class;
    - threshold-free: ``f1_best_k`` (per image, the best F1 of the top-k predictions over every
      k = 1..C, an upper bound on any per-image cutoff) and ``image_ap`` (per image, the AP of
      its C class scores, i.e. label-ranking average precision).
    Ties between scores are broken by class index (``np.argsort``, stable)."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(targets).astype(bool)
    if s.shape != t.shape or s.ndim != 2:
        raise ValueError(f"scores {s.shape} and targets {t.shape} must be the same (N, C)")
    keep = t.any(1)
    s_img, t_img = s[keep], t[keep]
    n, c = s_img.shape
    present = np.nonzero(t.any(0))[0]
    ap = {int(k): average_precision(s[:, k], t[:, k]) for k in present}
    out: dict[str, Any] = {
        "n": int(s.shape[0]),
        "classes_present": int(len(present)),
        "map": float(np.mean(list(ap.values()))) if ap else float("nan"),
        "map_chance": float(t[:, present].mean(0).mean()) if len(present) else float("nan"),
        "ap": {str(k): v for k, v in ap.items()},
    }
    if n == 0:
        out.update(top1=float("nan"), f1=float("nan"), f1_best_k=float("nan"),
                   image_ap=float("nan"))
        return out
    order = np.argsort(-s_img, axis=1, kind="stable")
    hits = np.take_along_axis(t_img, order, axis=1)  # (n, C): is the r-th ranked class true
    tp_at = np.cumsum(hits, axis=1)  # true positives among the top r+1
    n_true = t_img.sum(1)
    k = np.arange(1, c + 1)[None, :]
    f1_at = 2.0 * tp_at / (k + n_true[:, None])  # F1 of the top-k prediction, every k
    out["top1"] = float(hits[:, 0].mean())
    out["f1"] = float(f1_at[np.arange(n), n_true - 1].mean())
    out["f1_best_k"] = float(f1_at.max(1).mean())
    out["image_ap"] = float(np.mean([average_precision(s_img[i], t_img[i]) for i in range(n)]))
    out["objects_per_image"] = float(n_true.mean())
    return out


def digit_prompts(num_attrs: int = 0, templates: Sequence[Template] | None = None
                  ) -> list[list[str]]:
    """The 10 digit classes' prompts: ``templates`` filled with the digit words, else MAD
    zero-shot's digit task (``data.zeroshot.mad_tasks(num_attrs)``: prompts shaped like a
    ``num_attrs``-attribute box caption)."""
    if templates is not None:
        return filled(list(templates), list(S.DIGIT_WORDS))
    return mad_tasks(int(num_attrs))["digit"].prompts()


def multi_object_zeroshot(
    model: Any,
    emb: SceneEmbeddings,
    tokenizer: Tokenizer,
    templates: Sequence[Template] | None = None,
    ensemble: str = "auto",
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Which digits each scene image holds, zero-shot: ``multilabel_metrics`` of the (N, 10)
    ``prompt_scores`` of the scene images against ``digit_prompts`` (``ensemble="auto"``:
    ``eval.zeroshot.default_ensemble``). Adds ``ensemble``."""
    if len(emb) == 0:
        return {"skipped": "no scenes"}
    if ensemble == "auto":
        ensemble = default_ensemble(model)
    device = torch.device(device) if device is not None else _model_device(model)
    was_training = bool(getattr(model, "training", False))
    if hasattr(model, "eval"):
        model.eval()
    try:
        scores = prompt_scores(model, emb.image, tokenizer,
                               digit_prompts(emb.num_attrs, templates), device,
                               ensemble=ensemble)
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    out = multilabel_metrics(scores.numpy(), emb.digits)
    out["ensemble"] = ensemble
    return out


# ---------------------------------------------------------------- part-whole entailment


def roc_auc(pos: Any, neg: Any) -> float:
    """P(a positive score > a negative score) + P(equal) / 2 (Mann-Whitney; ties count half).
    NaN when either side is empty."""
    p = np.asarray(pos, dtype=np.float64).reshape(-1)
    q = np.asarray(neg, dtype=np.float64).reshape(-1)
    if not len(p) or not len(q):
        return float("nan")
    qs = np.sort(q)
    below = np.searchsorted(qs, p, side="left")
    equal = np.searchsorted(qs, p, side="right") - below
    return float((below + 0.5 * equal).sum() / (len(p) * len(q)))


def random_other(scene: np.ndarray, num_scenes: int, seed: int = 0) -> np.ndarray:
    """For each entry of ``scene``, a uniformly drawn scene index other than it (seeded)."""
    rng = np.random.default_rng(seed)
    shift = rng.integers(1, int(num_scenes), size=len(scene))
    return (np.asarray(scene, dtype=np.int64) + shift) % int(num_scenes)


def cone_margin(geometry: Any, apex: Tensor, child: Tensor, curv: Any, min_radius: float = 0.1,
                eta: float = 1.0) -> tuple[Tensor, Tensor]:
    """(ext_angle(apex, child), eta * half_aperture(apex)) row by row; inside when ext <= aper."""
    ext = geometry.ext_angle(apex, child, curv).float()
    aper = eta * geometry.half_aperture(apex, curv, min_radius=min_radius).float()
    return ext, aper


def _pair_stats(ext: Tensor, aper: Tensor) -> dict[str, float]:
    margin = (ext - aper).double()
    return {"inside": float((margin <= 0).double().mean()),
            "mean_ext_angle": float(ext.double().mean()),
            "mean_aperture": float(aper.double().mean()),
            "mean_margin": float(margin.mean())}


@torch.no_grad()
def part_whole_entailment(
    model: Any,
    emb: SceneEmbeddings,
    seed: int = 0,
    apex: str = "box",
    eta: float = 1.0,
    min_radius: float | None = None,
) -> dict[str, Any]:
    """Part-whole entailment accuracy, for images (box crop vs scene image) and texts (box
    caption vs scene caption).

    ``apex="box"`` (HyCoCLIP's "box image entails image" / "box text entails text"): the box is
    the cone's apex, the scene the child; ``apex="scene"`` the reverse. A pair is inside when
    ``ext_angle(apex, child) <= eta * half_aperture(apex)`` with the model's geometry, curvature
    and ``min_radius`` (default: the model's ``objective.entail_min_radius``, else 0.1).
    Per modality: ``true`` (each box with its own scene) and ``random`` (each box with a seeded
    uniformly drawn OTHER scene): inside rate, mean exterior angle, aperture and margin
    ``ext - aperture``; ``auc``: P(margin of a true pair < margin of a random pair) (ties half),
    and ``gap``: inside(true) - inside(random). The sphere: ``{"skipped": ...}``."""
    if apex not in APEXES:
        raise ValueError(f"apex={apex!r}; allowed: {', '.join(APEXES)}")
    geometry = model.geometry
    if not getattr(geometry, "HAS_ORIGIN", True):
        return {"skipped": "the sphere has no entailment cones"}
    if emb.box_image.shape[0] == 0:
        return {"skipped": "no boxes"}
    if min_radius is None:
        min_radius = float(getattr(getattr(model, "objective", None), "entail_min_radius", 0.1))
    curv = model.curv()
    curv = curv.detach().float().cpu() if isinstance(curv, Tensor) else float(curv)
    own = torch.from_numpy(np.asarray(emb.box_scene, dtype=np.int64))
    n = len(emb)
    other = torch.from_numpy(random_other(own.numpy(), n, seed)) if n >= 2 else None
    out: dict[str, Any] = {"apex": apex, "eta": float(eta), "min_radius": float(min_radius),
                           "n_boxes": int(own.numel()), "n_scenes": n, "seed": int(seed)}
    for name, parts, wholes in (("image", emb.box_image, emb.image),
                                ("text", emb.box_text, emb.text)):
        def margin(rows: Tensor, parts: Tensor = parts, wholes: Tensor = wholes
                   ) -> tuple[Tensor, Tensor]:
            a, b = (parts, wholes[rows]) if apex == "box" else (wholes[rows], parts)
            return cone_margin(geometry, a.float(), b.float(), curv, min_radius, eta)

        ext, aper = margin(own)
        res: dict[str, Any] = {"true": _pair_stats(ext, aper)}
        res["inside"] = res["true"]["inside"]
        if other is not None:
            ext_r, aper_r = margin(other)
            res["random"] = _pair_stats(ext_r, aper_r)
            res["gap"] = res["inside"] - res["random"]["inside"]
            # a true pair should have the smaller margin: score = -margin
            res["auc"] = roc_auc(-(ext - aper).double().numpy(),
                                 -(ext_r - aper_r).double().numpy())
        out[name] = res
    return out


# ---------------------------------------------------------------- entry point


def load_scenes(data: str | Path | Dataset, model: Any = None, split: str = "test") -> Dataset:
    """A ``MadScenes`` split of a directory (``scenes:DIR`` or ``DIR``; crops and scenes resized
    to the model's input size, ``model.image_size``, else the canvas and 28), or ``data`` itself
    when it is already a dataset."""
    if isinstance(data, Dataset):
        return data
    text = str(data)
    if text.startswith("scenes:"):
        text = text[len("scenes:"):]
    size = int(getattr(model, "image_size", 0) or 0)
    return MadScenes(text, split=split, crop_size=size or 28, image_size=size)


def evaluate_scenes(
    model: Any,
    data: str | Path | Dataset,
    tokenizer: Tokenizer | None = None,
    max_samples: int = 0,
    progress: bool = True,
    split: str = "test",
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, Any]:
    """The scene evaluations on one embedding pass: ``{"n", "n_boxes", "multi_object":
    multi_object_zeroshot, "part_whole": part_whole_entailment, "retrieval": scene image <->
    scene caption Recall@1, 5}``. ``data``: a MAD-scenes
    directory (``scenes:DIR`` or ``DIR``, its ``split``) or a ``MadScenes`` dataset;
    ``tokenizer`` defaults to the directory's ``tokenizer.json``."""
    dataset = load_scenes(data, model, split)
    if tokenizer is None:
        tokenizer = dataset_tokenizer(dataset, model)
    emb = embed_scenes(model, dataset, tokenizer, max_samples=max_samples,
                       batch_size=batch_size, progress=progress)
    score = getattr(model, "rank_scores", None)
    return {
        "n": len(emb),
        "n_boxes": int(emb.box_image.shape[0]),
        "multi_object": multi_object_zeroshot(model, emb, tokenizer),
        "part_whole": part_whole_entailment(model, emb, seed=seed),
        # scene image <-> scene caption, in the model's own ranking
        "retrieval": recall_at_k(emb.image, emb.text, score, ks=(1, 5)),
    }


__all__ = ["SceneEmbeddings", "average_precision", "digit_prompts", "digit_sets",
           "embed_scenes", "evaluate_scenes", "load_scenes", "multi_object_zeroshot",
           "multilabel_metrics", "part_whole_entailment", "roc_auc"]
