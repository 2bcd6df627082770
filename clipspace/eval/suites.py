"""Evaluation suites: a registry of name -> function over one ``Embeddings``.

Each suite takes a ``SuiteContext`` (the model, the split's embeddings, the tokenizer and the
options) and returns a JSON-ready dict, or ``{"skipped": reason}`` when the data cannot support
it. ``register_suite`` adds one; ``evaluate`` runs the requested ones in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor
from torch.utils.data import Subset

from clipspace.data.chains import chains_from_labels
from clipspace.data.hierarcaps import HierarCapsImages
from clipspace.data.zeroshot import ZeroShotTask, mad_tasks
from clipspace.errors import DataError
from clipspace.eval.class_tree import ClassTree, hierarchical_metrics, match_class_names
from clipspace.eval.consistency import mad_consistency
from clipspace.eval.datasets import caption_num_attrs, innermost
from clipspace.eval.embed import Embeddings, encode_texts
from clipspace.eval.hierarchy import hierarcaps_metrics, hierarchy_radius, specificity_correlation
from clipspace.eval.linear_probe import linear_probe
from clipspace.eval.retrieval import caption_groups, recall_at_k
from clipspace.eval.traversal import traverse
from clipspace.eval.zeroshot import accuracy, default_ensemble, prompt_scores

PROBE_KEYS: tuple[str, ...] = ("digit", "stroke", "swelling", "fracture", "scale", "colour")
HIERARCHY_ROOTS: tuple[str, ...] = ("default", "empty")


@dataclass
class SuiteContext:
    """What a suite may use. ``train_embeddings`` embeds the train split on first call (the
    linear probe's training data; None when the data has no train split). ``class_tree``: the
    tree the ``class_tree`` suite scores zero-shot predictions with; ``cache``: results one
    suite leaves for another (the zero-shot predictions)."""

    model: Any
    emb: Embeddings
    tokenizer: Any
    device: Any = "cpu"
    batch_size: int = 256
    zeroshot_ensemble: str = "auto"
    hierarchy_root: str = "default"
    probe_keys: Sequence[str] = PROBE_KEYS
    train_embeddings: Callable[[], Embeddings | None] = field(default=lambda: None)
    class_tree: ClassTree | None = None
    cache: dict[Any, Any] = field(default_factory=dict)


Suite = Callable[[SuiteContext], dict[str, Any]]


def zero_shot_tasks(emb: Embeddings) -> dict[str, ZeroShotTask]:
    """The data's own tasks (``dataset.zeroshot_tasks()``, e.g. an image folder's classes),
    else MAD's (the digit and each attribute, templates shaped like the model's captions)."""
    base = innermost(emb.dataset)
    own = getattr(base, "zeroshot_tasks", None)
    if callable(own):
        return own()
    if "digit" not in emb.labels:
        return {}
    return mad_tasks(caption_num_attrs(emb.dataset))


def zeroshot_suite(ctx: SuiteContext) -> dict[str, Any]:
    """Zero-shot top-1/top-5/mean per-class recall of every task of the data; the prompt
    ensemble ("prototype" or "score", ``eval.zeroshot.default_ensemble`` unless set) is
    reported under "ensemble"."""
    emb = ctx.emb
    tasks = zero_shot_tasks(emb)
    if not tasks:
        return {"skipped": "no class labels in this data"}
    ensemble = ctx.zeroshot_ensemble
    if ensemble == "auto":
        ensemble = default_ensemble(ctx.model)
    out: dict[str, Any] = {}
    for name, task in tasks.items():
        if task.label_key not in emb.labels:
            continue
        scores = _task_scores(ctx, name, task, ensemble)
        out[name] = accuracy(scores, emb.labels[task.label_key], len(task.classnames))
    if out:
        out["mean_top1"] = float(np.mean([v["top1"] for v in out.values()]))
    out["ensemble"] = ensemble
    return out


def _task_scores(ctx: SuiteContext, name: str, task: ZeroShotTask, ensemble: str) -> Tensor:
    """(N, C) zero-shot scores of ``task``; their argmax is kept in ``ctx.cache`` for the
    ``class_tree`` suite."""
    scores = prompt_scores(ctx.model, ctx.emb.image, ctx.tokenizer, task.prompts(), ctx.device,
                           ensemble=ensemble)
    ctx.cache[("zeroshot_pred", name, ensemble)] = scores.argmax(1).numpy()
    return scores


def class_tree_suite(ctx: SuiteContext) -> dict[str, Any]:
    """Hierarchical metrics (``eval.class_tree.hierarchical_metrics``: tree-induced error, LCA
    depth and hops, mistake severity, hierarchical P/R/F, Jaccard) of the zero-shot predictions
    of every task whose classes are all in ``ctx.class_tree`` (by prompt name, else by folder
    name: WordNet ids for ImageNet). Reuses the ``zeroshot`` suite's predictions when it ran
    first. Tasks the tree does not cover are skipped; covering none is a DataError naming the
    missing classes."""
    if ctx.class_tree is None:
        return {"skipped": "no class tree given (--class-tree FILE)"}
    emb, tree = ctx.emb, ctx.class_tree
    tasks = {k: t for k, t in zero_shot_tasks(emb).items() if t.label_key in emb.labels}
    if not tasks:
        return {"skipped": "no class labels in this data"}
    ensemble = ctx.zeroshot_ensemble
    if ensemble == "auto":
        ensemble = default_ensemble(ctx.model)
    folders = getattr(innermost(emb.dataset), "folders", None)
    out: dict[str, Any] = {}
    first_error = None
    for name, task in tasks.items():
        candidates = [task.classnames]
        if folders is not None and len(folders) == len(task.classnames):
            candidates.append(list(folders))
        try:
            names = match_class_names(tree, candidates)
        except DataError as err:
            first_error = first_error or err
            out[name] = {"skipped": str(err)}
            continue
        pred = ctx.cache.get(("zeroshot_pred", name, ensemble))
        if pred is None:
            pred = _task_scores(ctx, name, task, ensemble).argmax(1).numpy()
        out[name] = hierarchical_metrics(pred, emb.labels[task.label_key], names, tree)
    if first_error is not None and all("skipped" in v for v in out.values()):
        raise first_error
    out.update(ensemble=ensemble, tree=tree.source, tree_nodes=len(tree),
               virtual_root=tree.virtual_root)
    return out


def retrieval_gallery(emb: Embeddings) -> tuple[Tensor, np.ndarray, np.ndarray]:
    """(texts, image groups, text groups) that retrieval ranks: with several captions per image
    (``emb.all_text``) every caption, a hit being the caption's own image; else each row's
    caption, a hit being any equal caption (``caption_groups``: MAD captions repeat)."""
    if emb.all_text is not None and emb.text_image is not None:
        return emb.all_text, np.arange(len(emb)), np.asarray(emb.text_image)
    gi, gt = caption_groups(emb.captions)
    return emb.text, gi, gt


def retrieval_suite(ctx: SuiteContext) -> dict[str, Any]:
    """Recall@1/5/10 both ways (a hit: any image/caption equal to the target's; with several
    captions per image, any of the image's captions / the caption's own image), plus the
    instance-level R@1 (only the row's own (first) caption counts) and, on MAD, the consistency
    rule (``consistent_*``: the caption's attributes hold for the image; ``eval.consistency``)."""
    txt, gi, gt = retrieval_gallery(ctx.emb)
    img, txt = ctx.emb.image.to(ctx.device), txt.to(ctx.device)
    score = getattr(ctx.model, "rank_scores", ctx.model.similarity)  # ranks like similarity
    res = recall_at_k(img, txt, score_fn=score, img_groups=gi, txt_groups=gt)
    inst = recall_at_k(img, ctx.emb.text.to(ctx.device), score_fn=score, ks=(1,))
    res["instance_i2t_r1"] = inst["i2t_r1"]
    res["instance_t2i_r1"] = inst["t2i_r1"]
    res["unique_captions"] = len(set(ctx.emb.all_captions or ctx.emb.captions))
    res["captions"] = int(txt.shape[0])
    res.update(mad_consistency(ctx.emb, score, ctx.device))
    return res


def linear_probe_suite(ctx: SuiteContext) -> dict[str, Any]:
    """Logistic-regression probe per label on image points: trained on the train split when the
    data has one, else on a seeded half of the evaluated split."""
    emb = ctx.emb
    keys = getattr(innermost(emb.dataset), "label_keys", ctx.probe_keys)
    if not any(k in emb.labels for k in keys):
        return {"skipped": "no class labels in this data"}
    train = ctx.train_embeddings()
    out: dict[str, Any] = {}
    for key in keys:
        if key not in emb.labels:
            continue
        if train is not None:
            xtr, ytr, xte, yte = train.image, train.labels[key], emb.image, emb.labels[key]
        else:
            perm = np.random.default_rng(0).permutation(len(emb))
            tr, te = perm[: len(perm) // 2], perm[len(perm) // 2:]
            xtr, ytr, xte, yte = (emb.image[tr], emb.labels[key][tr],
                                  emb.image[te], emb.labels[key][te])
        if len(np.unique(ytr)) < 2:
            continue
        out[key] = linear_probe(xtr, ytr, xte, yte, cs=(0.1, 1.0, 10.0), max_iter=300)
    return out


def chains_of(emb: Embeddings) -> list[list[str]]:
    """Generic -> specific caption chain of every row: the data's own (HierarCaps), else built
    from the MAD labels, keyed by each row's index in the innermost dataset."""
    if emb.chains:
        return emb.chains
    pos, base = np.asarray(emb.positions), emb.dataset
    while isinstance(base, Subset):
        pos = np.asarray(base.indices)[pos]
        base = base.dataset
    base_idx = getattr(base, "indices", None)
    keys = None if base_idx is None else np.asarray(base_idx)[pos]
    return [c.positive for c in chains_from_labels(emb.labels, keys)]


def hierarchy_root_point(ctx: SuiteContext, cand: Tensor) -> Tensor:
    """[ROOT]: the text point of "" (Radial Embedding) or the geometry's default root (the
    origin; the normalised mean of the candidates on the sphere); docs/reference.md section 0."""
    if ctx.hierarchy_root == "empty":
        return encode_texts(ctx.model, ctx.tokenizer, [""], ctx.batch_size, ctx.device)[0]
    return ctx.model.geometry.default_root(cand, ctx.model.curv().detach().float().cpu())


def image_keys(emb: Embeddings) -> list[str] | None:
    """The image file of every row of a HierarCaps split (a CSV may list an image on several
    rows: the official evaluator scores it once, with all its chains as references); None for
    other data (every row is its own image)."""
    base = emb.dataset
    while isinstance(base, Subset):
        base = base.dataset
    index = emb.labels.get("index")
    if not isinstance(base, HierarCapsImages) or index is None:
        return None
    return [str(base.rows[int(i)].image_path) for i in index]


def hierarchy_suite(ctx: SuiteContext) -> dict[str, Any]:
    """HierarCaps protocol (docs/reference.md section 4; the official evaluator's rules,
    ``eval.hierarchy``): P/R of predicted chains, tau_d, plus the Spearman correlation of the
    radius with specificity and three traversals. Candidates in first-occurrence order."""
    model, emb = ctx.model, ctx.emb
    if not emb.chains and "digit" not in emb.labels:
        return {"skipped": "no caption chains in this data (HierarCaps or MAD)"}
    geom, curv = model.geometry, model.curv().detach().float().cpu()
    chains = chains_of(emb)
    cand_texts = list(dict.fromkeys(c for ch in chains for c in ch))
    cand = encode_texts(model, ctx.tokenizer, cand_texts, ctx.batch_size, ctx.device)
    root_pt = hierarchy_root_point(ctx, cand)
    rho = hierarchy_radius(cand, geom, curv, root_pt)

    def sim(a: Tensor, b: Tensor) -> Tensor:
        return model.similarity(a.to(ctx.device), b.to(ctx.device)).float().cpu()

    out = hierarcaps_metrics(emb.image, cand, cand_texts, rho, chains, sim,
                             groups=image_keys(emb))
    lookup = dict(zip(cand_texts, rho.tolist(), strict=True))
    lvl_rho = np.array([[lookup[c] for c in ch] for ch in chains])
    img_rho = hierarchy_radius(emb.image, geom, curv, root_pt).numpy()
    out.update(_specificity(lvl_rho, img_rho))
    out["traversals"] = [
        {"index": i, "caption": emb.captions[i], "chain": list(chains[i]),
         "path": traverse(emb.image[i], cand, cand_texts, geom, sim, curv, steps=50,
                          root=None if geom.HAS_ORIGIN else root_pt)}
        for i in range(min(3, len(chains)))
    ]
    out["root"] = ctx.hierarchy_root
    return out


def _specificity(lvl_rho: np.ndarray, img_rho: np.ndarray) -> dict[str, Any]:
    """Root distance against specificity level (text levels 1..L, images at L + 1)."""
    n_chain, depth = lvl_rho.shape
    levels = np.tile(np.arange(1, depth + 1), (n_chain, 1))
    pooled_r = np.concatenate([lvl_rho.ravel(), img_rho])
    pooled_s = np.concatenate([levels.ravel(), np.full(len(img_rho), depth + 1)])
    return {
        "spearman_text": specificity_correlation(lvl_rho.ravel(), levels.ravel()),
        "spearman_text_image": specificity_correlation(pooled_r, pooled_s),
        "root_dist_text_mean": float(lvl_rho.mean()),
        "root_dist_image_mean": float(img_rho.mean()),
        "root_dist_by_level": [float(v) for v in lvl_rho.mean(0)],
    }


SUITES: dict[str, Suite] = {
    "zeroshot": zeroshot_suite,
    "retrieval": retrieval_suite,
    "linear_probe": linear_probe_suite,
    "hierarchy": hierarchy_suite,
    "class_tree": class_tree_suite,
}


def register_suite(name: str, suite: Suite) -> None:
    """Make ``evaluate(..., suites=[name])`` run ``suite(ctx)``."""
    SUITES[name] = suite


__all__ = [
    "HIERARCHY_ROOTS",
    "PROBE_KEYS",
    "SUITES",
    "Suite",
    "SuiteContext",
    "chains_of",
    "class_tree_suite",
    "hierarchy_suite",
    "linear_probe_suite",
    "register_suite",
    "retrieval_gallery",
    "retrieval_suite",
    "zeroshot_suite",
]
