"""``evaluate(model, data, suites)``: embed one split once, run the chosen suites on it.

Data specs: ``mad:DIR`` (a MAD split: zero-shot, retrieval, linear probe, hierarchy on MAD
chains) and ``hierarcaps:CSV`` (HierarCaps test CSV with an image folder, ``image_dir`` or
``hierarcaps:CSV::IMAGE_DIR``; hierarchy and retrieval on the most specific caption). A Dataset
object is accepted too. ``evaluate_embeddings`` runs suites on embeddings you already have.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from clipspace.data.embeddings_io import read_arrays, read_texts, save_arrays
from clipspace.errors import DataError
from clipspace.eval.class_tree import ClassTree, load_class_tree
from clipspace.eval.datasets import dataset_tokenizer, has_train_split, load_eval_dataset
from clipspace.eval.embed import Embeddings, embed
from clipspace.eval.suites import HIERARCHY_ROOTS, PROBE_KEYS, SUITES, SuiteContext
from clipspace.eval.zeroshot import ENSEMBLES

DEFAULT_SUITES: tuple[str, ...] = ("zeroshot", "retrieval", "linear_probe", "hierarchy")


def parse_suites(suites: str | Sequence[str]) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` -> checked suite names (DataError naming unknown ones)."""
    names = suites.split(",") if isinstance(suites, str) else list(suites)
    names = [s.strip() for s in names if s.strip()]
    bad = [s for s in names if s not in SUITES]
    if bad:
        raise DataError(f"unknown suite(s) {bad}; choose from {list(SUITES)}")
    return names


def _check_options(hierarchy_root: str, zeroshot_ensemble: str) -> None:
    if hierarchy_root not in HIERARCHY_ROOTS:
        raise DataError(f"hierarchy_root must be one of {list(HIERARCHY_ROOTS)}, "
                        f"got {hierarchy_root!r}")
    if zeroshot_ensemble not in ("auto", *ENSEMBLES):
        raise DataError(f"zeroshot_ensemble must be one of {['auto', *ENSEMBLES]}, "
                        f"got {zeroshot_ensemble!r}")


def evaluate_embeddings(ctx: SuiteContext, suites: Sequence[str]) -> dict[str, Any]:
    """``{suite: result}`` of each suite on ``ctx.emb`` (no further embedding of the split)."""
    _check_options(ctx.hierarchy_root, ctx.zeroshot_ensemble)
    return {name: SUITES[name](ctx) for name in parse_suites(suites)}


def _probe_train(model: Any, data: Any, tok: Any, image_dir: Any, split: str, opts: dict):
    """Loader of the linear probe's training embeddings (the train split), memoised."""
    cache: dict[str, Embeddings | None] = {}

    def load() -> Embeddings | None:
        if "emb" not in cache:
            cache["emb"] = None
            if has_train_split(data) and split != "train":
                try:
                    tr = load_eval_dataset(data, model, "train", image_dir)
                    cache["emb"] = embed(model, tr, tok, **opts)
                except DataError:
                    cache["emb"] = None
        return cache["emb"]

    return load


def evaluate(
    model: Any,
    data: str | Dataset,
    suites: str | Sequence[str] = DEFAULT_SUITES,
    tokenizer: Any = None,
    split: str = "test",
    max_samples: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = True,
    image_dir: str | None = None,
    probe_samples: int = 5000,
    probe_keys: Sequence[str] = PROBE_KEYS,
    hierarchy_root: str = "default",
    zeroshot_ensemble: str = "auto",
    embeddings: Embeddings | None = None,
    class_tree: str | Path | ClassTree | None = None,
) -> dict[str, Any]:
    """Run ``suites`` on ``data``; returns ``{"data", "split", "n", <suite>: {...}}``.

    The linear probe trains on up to ``probe_samples`` images of the train split (else half of
    the evaluation split) for each label in ``probe_keys``. ``hierarchy_root``: "default" (the
    origin; the normalised mean of the candidates on the sphere) or "empty" (the text point of
    "", the root of Radial Embedding). ``zeroshot_ensemble``: "prototype" (templates averaged
    before the final map), "score" (scores averaged over templates) or "auto" (the one that suits
    the model's scoring rule, ``eval.zeroshot.default_ensemble``). ``embeddings``: reuse an
    earlier ``embed`` of this split instead of embedding it. ``class_tree``: a class tree file
    (``eval.class_tree.load_class_tree``, read before embedding) or ``ClassTree``; it adds the
    ``class_tree`` suite (hierarchical metrics of the zero-shot predictions). Suites the data
    cannot support are reported as ``{"skipped": reason}``.
    """
    names = parse_suites(suites)
    _check_options(hierarchy_root, zeroshot_ensemble)
    if class_tree is not None and not isinstance(class_tree, ClassTree):
        class_tree = load_class_tree(class_tree)
    if class_tree is not None and "class_tree" not in names:
        names.append("class_tree")
    dataset = embeddings.dataset if embeddings is not None else load_eval_dataset(
        data, model, split, image_dir)
    tok = tokenizer or dataset_tokenizer(dataset, model)
    was_training = bool(getattr(model, "training", False))
    if isinstance(model, torch.nn.Module):
        model.to(device).eval()
    try:
        emb = embeddings or embed(model, dataset, tok, batch_size, device, max_samples, progress)
        ctx = SuiteContext(
            model=model, emb=emb, tokenizer=tok, device=device, batch_size=batch_size,
            zeroshot_ensemble=zeroshot_ensemble, hierarchy_root=hierarchy_root,
            probe_keys=probe_keys, class_tree=class_tree,
            train_embeddings=_probe_train(model, data, tok, image_dir, split, {
                "batch_size": batch_size, "device": device, "max_samples": probe_samples,
                "progress": progress}),
        )
        result: dict[str, Any] = {"data": data if isinstance(data, str) else repr(data),
                                  "split": split, "n": len(emb)}
        result.update(evaluate_embeddings(ctx, names))
    finally:
        if isinstance(model, torch.nn.Module):
            model.train(was_training)
    return result


def embedding_arrays(emb: Embeddings) -> dict[str, np.ndarray]:
    """``image``, ``text``, every label, ``caption_id`` (equal captions share an id) and
    ``caption_words`` (number of "-"-separated words): what ``clipspace analyze`` reads."""
    arrays: dict[str, Any] = {
        "image": emb.image.numpy(), "text": emb.text.numpy(), "caption_id": emb.caption_ids(),
        "caption_words": np.array([len(c.split("-")) for c in emb.captions], dtype=np.int64),
    }
    arrays.update(emb.labels)
    return arrays


def save_embeddings(emb: Embeddings, out: str | Path, meta: dict[str, Any] | None = None
                    ) -> Path:
    """Write ``embedding_arrays(emb)``, the row positions, the captions and ``meta`` (e.g.
    ``embedding_meta``: model, geometry, curvature, data) atomically to ``out`` (.npz / .pt /
    .safetensors); ``load_saved_embeddings`` reads it back, ``clipspace analyze`` reads the
    arrays."""
    arrays = {**embedding_arrays(emb), "positions": np.asarray(emb.positions, dtype=np.int64)}
    texts = {"captions": json.dumps(list(emb.captions)), "meta": json.dumps(meta or {})}
    if emb.all_text is not None:  # several captions per image: every caption and its image
        arrays.update(all_text=emb.all_text.numpy(), text_image=emb.text_image)
        texts["all_captions"] = json.dumps(list(emb.all_captions))
    return save_arrays(out, arrays, texts)


def embedding_meta(model: Any, data: Any, split: str) -> dict[str, Any]:
    """What a saved embedding file records about where its points come from."""
    config = getattr(model, "config", None)
    return {
        "format": "clipspace-embeddings",
        "model": str(getattr(getattr(config, "model", None), "pretrained", "") or ""),
        "geometry": str(getattr(getattr(model, "geometry", None), "__name__", "")).rsplit(
            ".", 1)[-1],
        "curv": float(model.curv().detach().float()) if hasattr(model, "curv") else 1.0,
        "data": data if isinstance(data, str) else repr(data),
        "split": split,
    }


def load_saved_embeddings(path: str | Path, dataset: Dataset | None = None
                          ) -> tuple[Embeddings, dict[str, Any]]:
    """(Embeddings, meta) of a ``save_embeddings`` file; ``dataset`` (the data the file was
    embedded from) gives suites their tasks and chains. A file of another dataset or with
    non-finite values is a DataError naming it."""
    arrays, texts = read_arrays(path, mmap=False), read_texts(path)
    if "captions" not in texts or "image" not in arrays or "text" not in arrays:
        raise DataError(f"{path}: not a clipspace embedding file (write one with "
                        "`clipspace embed` or `eval --save-embeddings`)")
    captions = json.loads(texts["captions"])
    image, text = torch.from_numpy(arrays.pop("image")), torch.from_numpy(arrays.pop("text"))
    if not (torch.isfinite(image).all() and torch.isfinite(text).all()):
        raise DataError(f"{path}: embeddings contain NaN or Inf")
    positions = arrays.pop("positions", np.arange(len(captions)))
    all_text, text_image = arrays.pop("all_text", None), arrays.pop("text_image", None)
    if dataset is not None and len(positions) and int(positions.max()) >= len(dataset):
        raise DataError(f"{path}: rows point past the end of the data ({len(dataset)} items)")
    labels = {k: v for k, v in arrays.items() if k not in ("caption_id", "caption_words")}
    emb = Embeddings(image=image.float(), text=text.float(), captions=captions, labels=labels,
                     positions=positions, dataset=dataset,
                     all_text=None if all_text is None else torch.from_numpy(all_text).float(),
                     text_image=text_image,
                     all_captions=json.loads(texts.get("all_captions", "[]")))
    return emb, json.loads(texts.get("meta", "{}"))


__all__ = [
    "DEFAULT_SUITES",
    "embedding_arrays",
    "embedding_meta",
    "evaluate",
    "evaluate_embeddings",
    "load_saved_embeddings",
    "parse_suites",
    "save_embeddings",
]
