"""``evaluate(model, data, suites)``: every evaluation suite on one dataset, as a JSON-ready dict.

Data specs: ``mad:DIR`` (a MAD split: zero-shot, retrieval, linear probe, hierarchy on MAD chains)
and ``hierarcaps:CSV`` (HierarCaps test CSV with an image folder, ``image_dir`` or
``hierarcaps:CSV::IMAGE_DIR``; hierarchy and retrieval on the most specific caption). A Dataset
object (``MADDataset`` or ``HierarCapsImages``) is accepted too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from clipspace.errors import DataError
from clipspace.eval.hierarchy import hierarcaps_metrics, root_distance, specificity_correlation
from clipspace.eval.linear_probe import linear_probe
from clipspace.eval.retrieval import caption_groups, recall_at_k
from clipspace.eval.traversal import traverse
from clipspace.eval.zeroshot import ENSEMBLES, zeroshot_classify

SUITES = ("zeroshot", "retrieval", "linear_probe", "hierarchy")
Tokenizer = Callable[[list[str]], Tensor]


# ---- data -----------------------------------------------------------------------------------


def _parse_spec(spec: str) -> tuple[str, str]:
    if ":" not in spec:
        raise DataError(f"data spec {spec!r} must look like mad:DIR or hierarcaps:CSV")
    kind, _, path = spec.partition(":")
    if kind not in ("mad", "hierarcaps"):
        raise DataError(f"data spec {spec!r}: evaluation supports mad: and hierarcaps: only")
    return kind, path


def load_eval_dataset(
    data: str | Dataset, model: Any = None, split: str = "test", image_dir: str | None = None
) -> Dataset:
    """A Dataset for ``data`` (a spec string or an existing Dataset)."""
    if not isinstance(data, str):
        return data
    kind, path = _parse_spec(data)
    if kind == "mad":
        from clipspace.data.mad import MADDataset

        # captions shaped like the ones the model trained on (its config's data section)
        data_cfg = getattr(getattr(model, "config", None), "data", None)
        if data_cfg is None or not str(getattr(data_cfg, "train", "")).startswith("mad:"):
            return MADDataset(path, split=split)
        return MADDataset(path, split=split, num_attrs=data_cfg.num_attrs,
                          main_object=data_cfg.main_object, objects_only=data_cfg.objects_only)
    from clipspace.data.hierarcaps import HierarCapsImages
    from clipspace.data.transforms import image_transform

    if "::" in path and image_dir is None:
        path, image_dir = path.split("::", 1)
    size = int(getattr(model, "image_size", 224) or 224)
    transform = getattr(model, "preprocess", None) or image_transform(size)
    return HierarCapsImages(path, image_dir, transform=transform)


def _default_tokenizer(dataset: Dataset, model: Any) -> Tokenizer:
    from clipspace.data.tokenizer import get_tokenizer

    root = getattr(dataset, "root", None)
    if root is None:
        raise DataError("no tokenizer given and the dataset has none (pass tokenizer=...)")
    ctx = getattr(model, "context_length", None)
    return get_tokenizer(root, context_length=ctx)


# ---- embedding ------------------------------------------------------------------------------


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"image": torch.stack([torch.as_tensor(it["image"]) for it in items])}
    out["caption"] = [str(it["text"]) for it in items]
    for k, v in items[0].items():
        if k in ("image", "text"):
            continue
        if isinstance(v, (bool, int, np.integer)):
            out[k] = torch.tensor([int(it[k]) for it in items], dtype=torch.long)
        elif k == "captions":
            out[k] = [list(it[k]) for it in items]
    return out


@torch.no_grad()
def encode_texts(
    model: Any, tokenizer: Tokenizer, texts: Sequence[str], batch_size: int = 256,
    device: str | torch.device = "cpu", tangent: bool = False,
) -> Tensor:
    """Text points (or tangent vectors) of ``texts``, (len, D) float32 on CPU."""
    out = []
    for s in range(0, len(texts), batch_size):
        tok = tokenizer(list(texts[s : s + batch_size])).to(device)
        out.append(model.encode_text(tok, tangent=tangent).float().cpu())
    return torch.cat(out, 0)


@torch.no_grad()
def embed_dataset(
    model: Any,
    dataset: Dataset,
    tokenizer: Tokenizer,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    max_samples: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """``{"image": (N,D), "text": (N,D) points of each image's caption, "captions": [...],
    "labels": {key: (N,) int}, "chains": [[4 str], ...] (HierarCaps only), "rows": (N,)}``."""
    if max_samples and max_samples < len(dataset):  # type: ignore[arg-type]
        # a seeded random subset (kept in order): datasets are often sorted by class
        pick = np.sort(np.random.default_rng(0).choice(len(dataset), int(max_samples),
                                                        replace=False))
        dataset = Subset(dataset, pick.tolist())
    positions = np.asarray(dataset.indices) if isinstance(dataset, Subset) else None
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=_collate)
    imgs: list[Tensor] = []
    captions: list[str] = []
    labels: dict[str, list[Tensor]] = {}
    chains: list[list[str]] = []
    for batch in tqdm(loader, desc="embed images", disable=not progress, leave=False):
        imgs.append(model.encode_image(batch["image"].to(device)).float().cpu())
        captions.extend(batch["caption"])
        chains.extend(batch.get("captions", []))
        for k, v in batch.items():
            if isinstance(v, Tensor) and k != "image":
                labels.setdefault(k, []).append(v)
    uniq, inverse = np.unique(np.asarray(captions, dtype=object).astype(str), return_inverse=True)
    txt_unique = encode_texts(model, tokenizer, list(uniq), batch_size, device)
    out = {
        "image": torch.cat(imgs, 0),
        "text": txt_unique[torch.from_numpy(inverse.reshape(-1))],
        "captions": captions,
        "labels": {k: torch.cat(v).numpy() for k, v in labels.items()},
        "positions": np.arange(len(captions)) if positions is None else positions,
    }
    if chains:
        out["chains"] = chains
    return out


# ---- suites ---------------------------------------------------------------------------------


def caption_num_attrs(dataset: Dataset) -> int:
    """Attributes per caption of a MAD dataset (0 when unknown or objects only): zero-shot
    templates take the same shape as the captions the model saw."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    if getattr(dataset, "objects_only", False):
        return 0
    return int(getattr(dataset, "num_attrs", 0) or 0)


def zeroshot_suite(model: Any, emb: dict, tokenizer: Tokenizer, device: Any,
                   num_attrs: int = 0, ensemble: str = "prototype") -> dict[str, Any]:
    """Zero-shot accuracy of every MAD task on ``embed_dataset`` output, with templates shaped
    like ``num_attrs``-attribute captions (``caption_num_attrs`` of the dataset)."""
    from clipspace.data.zeroshot import mad_tasks

    out: dict[str, Any] = {}
    for name, task in mad_tasks(num_attrs).items():
        if task.label_key not in emb["labels"]:
            continue
        out[name] = zeroshot_classify(
            model, emb["image"], emb["labels"][task.label_key], tokenizer,
            task.classnames, task.templates, device, ensemble=ensemble,
        )
    if out:
        out["mean_top1"] = float(np.mean([v["top1"] for v in out.values()]))
    return out


def _retrieval(model: Any, emb: dict, device: Any) -> dict[str, Any]:
    gi, gt = caption_groups(emb["captions"])
    img, txt = emb["image"].to(device), emb["text"].to(device)  # score on the model's device
    res = recall_at_k(img, txt, score_fn=model.similarity, img_groups=gi, txt_groups=gt)
    inst = recall_at_k(img, txt, score_fn=model.similarity, ks=(1,))
    res["instance_i2t_r1"] = inst["i2t_r1"]
    res["instance_t2i_r1"] = inst["t2i_r1"]
    res["unique_captions"] = int(gt.max() + 1)
    return res


def _linear_probe(emb: dict, train_emb: dict | None, keys: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        if key not in emb["labels"]:
            continue
        if train_emb is not None:
            xtr, ytr = train_emb["image"], train_emb["labels"][key]
            xte, yte = emb["image"], emb["labels"][key]
        else:  # no train split: half of the evaluation split
            perm = np.random.default_rng(0).permutation(len(emb["image"]))
            tr, te = perm[: len(perm) // 2], perm[len(perm) // 2:]
            xtr, ytr, xte, yte = (emb["image"][tr], emb["labels"][key][tr],
                                  emb["image"][te], emb["labels"][key][te])
        if len(np.unique(ytr)) < 2:
            continue
        out[key] = linear_probe(xtr, ytr, xte, yte, cs=(0.1, 1.0, 10.0), max_iter=300)
    return out


def _hierarchy(model: Any, emb: dict, dataset: Dataset, tokenizer: Tokenizer, device: Any,
               batch_size: int, traversals: int = 3, root: str = "default") -> dict[str, Any]:
    geom, curv = model.geometry, model.curv().detach().float().cpu()
    if "chains" in emb:
        chains = emb["chains"]
    else:
        from clipspace.data.chains import chains_from_labels

        base, pos = dataset, emb["positions"]
        while isinstance(base, Subset):  # positions relative to the innermost dataset
            pos = np.asarray(base.indices)[pos]
            base = base.dataset
        base_idx = getattr(base, "indices", None)
        chains = [c.positive for c in chains_from_labels(
            emb["labels"], None if base_idx is None else np.asarray(base_idx)[pos])]
    cand_texts = sorted({c for ch in chains for c in ch})
    cand = encode_texts(model, tokenizer, cand_texts, batch_size, device)
    if root == "empty":  # REFERENCE section 3: r = text embedding of the empty caption
        root_pt = encode_texts(model, tokenizer, [""], batch_size, device)[0]
    else:  # the origin, or the normalised mean of the candidates on the sphere
        root_pt = geom.default_root(cand, curv)
    rho = root_distance(cand, geom, curv, root_pt)

    def sim(a: Tensor, b: Tensor) -> Tensor:
        return model.similarity(a.to(device), b.to(device)).float().cpu()

    out = hierarcaps_metrics(emb["image"], cand, cand_texts, rho, chains, sim)
    lookup = dict(zip(cand_texts, rho.tolist(), strict=True))
    lvl_rho = np.array([[lookup[c] for c in ch] for ch in chains])
    levels = np.tile(np.arange(1, lvl_rho.shape[1] + 1), (len(chains), 1))
    img_rho = root_distance(emb["image"], geom, curv, root_pt).numpy()
    out["spearman_text"] = specificity_correlation(lvl_rho.ravel(), levels.ravel())
    pooled_r = np.concatenate([lvl_rho.ravel(), img_rho])
    pooled_s = np.concatenate([levels.ravel(), np.full(len(img_rho), lvl_rho.shape[1] + 1)])
    out["spearman_text_image"] = specificity_correlation(pooled_r, pooled_s)
    out["root_dist_text_mean"] = float(lvl_rho.mean())
    out["root_dist_image_mean"] = float(img_rho.mean())
    out["root_dist_by_level"] = [float(v) for v in lvl_rho.mean(0)]
    paths = []
    for i in range(min(traversals, len(chains))):
        paths.append({"index": i, "caption": emb["captions"][i], "chain": list(chains[i]),
                      "path": traverse(emb["image"][i], cand, cand_texts, geom, sim, curv,
                                       steps=50, root=None if geom.HAS_ORIGIN else root_pt)})
    out["traversals"] = paths
    out["root"] = root
    return out


def evaluate(
    model: Any,
    data: str | Dataset,
    suites: Sequence[str] = SUITES,
    tokenizer: Tokenizer | None = None,
    split: str = "test",
    max_samples: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = True,
    image_dir: str | None = None,
    probe_samples: int = 5000,
    probe_keys: Sequence[str] = ("digit", "stroke", "swelling", "fracture", "scale", "colour"),
    hierarchy_root: str = "default",
    zeroshot_ensemble: str = "prototype",
) -> dict[str, Any]:
    """Run ``suites`` on ``data``; returns ``{"data", "split", "n", <suite>: {...}}``.

    The linear probe trains on up to ``probe_samples`` images of the train split (else half of
    the evaluation split) for each label in ``probe_keys``. ``hierarchy_root``: "default" (the
    origin; the normalised mean of the candidates on the sphere) or "empty" (the text embedding
    of "", the root of Radial Embedding). ``zeroshot_ensemble``: "prototype" (templates averaged
    before the final map) or "score" (scores averaged over templates; see ``eval/zeroshot.py``).
    Suites not applicable to the data
    (zero-shot / linear probe on HierarCaps) are reported as ``{"skipped": reason}``.
    """
    if hierarchy_root not in ("default", "empty"):
        raise DataError(f"hierarchy_root must be 'default' or 'empty', got {hierarchy_root!r}")
    if zeroshot_ensemble not in ENSEMBLES:
        raise DataError(f"zeroshot_ensemble must be one of {list(ENSEMBLES)}, "
                        f"got {zeroshot_ensemble!r}")
    suites = [s.strip() for s in suites if s.strip()]
    bad = [s for s in suites if s not in SUITES]
    if bad:
        raise DataError(f"unknown suite(s) {bad}; choose from {list(SUITES)}")
    dataset = load_eval_dataset(data, model, split, image_dir)
    tok = tokenizer or _default_tokenizer(dataset, model)
    was_training = getattr(model, "training", False)
    if hasattr(model, "to"):
        model.to(device)
    if hasattr(model, "eval"):
        model.eval()
    try:
        emb = embed_dataset(model, dataset, tok, batch_size, device, max_samples, progress)
        is_mad = "digit" in emb["labels"]
        result: dict[str, Any] = {"data": data if isinstance(data, str) else repr(data),
                                  "split": split, "n": len(emb["captions"])}
        for suite in suites:
            if suite == "zeroshot":
                result[suite] = (zeroshot_suite(model, emb, tok, device,
                                                caption_num_attrs(dataset), zeroshot_ensemble)
                                 if is_mad
                                 else {"skipped": "no class labels in this data"})
            elif suite == "retrieval":
                result[suite] = _retrieval(model, emb, device)
            elif suite == "linear_probe":
                if not is_mad:
                    result[suite] = {"skipped": "no class labels in this data"}
                    continue
                train_emb = None
                if isinstance(data, str) and split != "train":
                    try:
                        tr = load_eval_dataset(data, model, "train", image_dir)
                        train_emb = embed_dataset(model, tr, tok, batch_size, device,
                                                  probe_samples, progress)
                    except DataError:
                        train_emb = None
                result[suite] = _linear_probe(emb, train_emb, probe_keys)
            elif suite == "hierarchy":
                result[suite] = _hierarchy(model, emb, dataset, tok, device, batch_size,
                                           root=hierarchy_root)
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    return result


def save_embeddings(
    model: Any,
    data: str | Dataset,
    out: str | Path,
    tokenizer: Tokenizer | None = None,
    split: str = "test",
    max_samples: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Path:
    """Embed ``data`` and write ``image``, ``text``, every label, ``caption_id`` (equal captions
    share an id) and ``caption_words`` (number of "-"-separated words) atomically to ``out``
    (.npz / .pt / .safetensors), ready for ``clipspace analyze``."""
    from clipspace.analysis.embeddings_io import save_arrays

    dataset = load_eval_dataset(data, model, split)
    tok = tokenizer or _default_tokenizer(dataset, model)
    if hasattr(model, "eval"):
        model.to(device).eval()
    emb = embed_dataset(model, dataset, tok, batch_size, device, max_samples, progress)
    gi, _ = caption_groups(emb["captions"])
    arrays: dict[str, Any] = {"image": emb["image"].numpy(), "text": emb["text"].numpy(),
                              "caption_id": gi,
                              "caption_words": np.array([len(c.split("-")) for c in
                                                         emb["captions"]], dtype=np.int64)}
    arrays.update(emb["labels"])
    return save_arrays(out, arrays)
