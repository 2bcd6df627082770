"""``clipspace reproduce traversal``: MERU's image traversals (Desai et al. 2023, Sec. 5) and the
number of captions they keep (EuCLIP, Chou & Alam 2024, Fig. 5), for clip, euclip, meru and atmg
trained on MAD with the same budget.

For every evaluated test image the walk to [ROOT] (``eval.traversal.traverse_batch``: 50 steps; rule
"mask" = MERU's released script, "keep" = ``eval.traversal.traverse``) retrieves captions from a
pool: each test caption, its attribute-dropped versions (the digit with any subset of the
caption's attributes) and the image's MAD chain (``data.chains``: digit, +1, +2, +3 attributes),
so coarser captions exist. Per model: captions kept per image (histogram), the share of kept
captions true of the image (``eval.consistency``), and whether paths grow more generic (fewer
words) toward [ROOT]; example paths of a few images side by side.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipspace.analysis.hyperbolic_plots import plot_kept_histogram
from clipspace.config import PRESETS
from clipspace.data.captions import SEP, parse_caption
from clipspace.eval.consistency import caption_table, image_table
from clipspace.eval.embed import Embeddings, embed, encode_texts
from clipspace.eval.suites import chains_of
from clipspace.eval.traversal import RULES, traverse_batch
from clipspace.experiments.common import (
    FULL,
    QUICK,
    ensure_mad,
    evaluate_run,
    finish,
    load_model_and_data,
    mad_recipe,
)
from clipspace.experiments.registry import Experiment, Option, names_parser, register
from clipspace.report import Section, Table
from clipspace.train import train

PRESET_NAMES: tuple[str, ...] = ("clip", "euclip", "meru", "atmg")
STEPS = 50  # traversal steps (MERU's default)
EXAMPLES = 4  # images whose paths the report shows
# quick: fewer training steps and 200 evaluated test images (every one of them traversed)
QUICK_BUDGET = dataclasses.replace(QUICK, steps=60, eval_samples=200)
# full: 4 x 1,500 steps (1,800 took 20 min 3 s with the traversal of 4,000 images per model)
FULL_BUDGET = dataclasses.replace(FULL, steps=1500)
CLAIM = ("MERU Sec. 5: walking from an image embedding to [ROOT] and keeping each step's nearest "
         "caption (MERU's script: only captions whose cone holds the point) yields ever more "
         "generic captions; EuCLIP Fig. 5 compares geometries by captions kept per image.")


def sub_captions(text: str) -> list[str]:
    """The caption and its attribute-dropped versions: the digit word with every subset of the
    caption's other words, in the caption's word order (``"red-3-thin"`` -> ``"3"``,
    ``"red-3"``, ``"3-thin"``, ``"red-3-thin"``)."""
    words = text.split(SEP)
    digit = [w for w in words if "digit" in parse_caption(w)]
    attrs = [w for w in words if w not in digit]
    out = []
    for k in range(len(attrs) + 1):
        for keep in itertools.combinations(attrs, k):
            out.append(SEP.join(w for w in words if w in digit or w in keep))
    return out


def caption_pool(emb: Embeddings) -> list[str]:
    """Distinct captions (first-occurrence order): every test caption's ``sub_captions`` and
    every image's chain."""
    pool = [c for cap in emb.captions for c in sub_captions(cap)]
    pool += [c for chain in chains_of(emb) for c in chain]
    return list(dict.fromkeys(pool))


def path_stats(paths: Sequence[Sequence[str]], labels: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per-model numbers of the traversals: kept = captions per image; true_share = kept
    captions whose every named attribute holds for the image; generic_steps = share of
    consecutive pairs whose second caption has no more words than the first; narrowing =
    mean words of the first minus the last caption of paths with >= 2 captions."""
    kept = np.array([len(p) for p in paths], dtype=np.int64)
    img = image_table(labels)
    true, total, steps, generic, narrowing = 0, 0, 0, 0, []
    for i, path in enumerate(paths):
        if not path:
            continue
        cap = caption_table(path)
        true += int(((cap < 0) | (cap == img[i])).all(1).sum())
        total += len(path)
        words = [len(c.split(SEP)) for c in path]
        steps += len(words) - 1
        generic += sum(b <= a for a, b in zip(words, words[1:]))
        if len(words) >= 2:
            narrowing.append(words[0] - words[-1])
    return {
        "kept": kept.tolist(),
        "kept_mean": float(kept.mean()) if len(kept) else 0.0,
        "kept_hist": np.bincount(kept).tolist() if len(kept) else [],
        "empty_share": float((kept == 0).mean()) if len(kept) else 0.0,
        "true_share": true / total if total else float("nan"),
        "generic_steps": generic / steps if steps else float("nan"),
        "narrowing": float(np.mean(narrowing)) if narrowing else float("nan"),
        "multi_paths": len(narrowing),
    }


def verdict(stats: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """Rule: A = meru keeps more captions per image than clip (means); B = meru's paths narrow
    toward [ROOT] (mean words first - last > 0). Both: 'agrees'; one: 'partly'; none:
    'disagrees'; 'not comparable' when meru or clip is missing or meru has no path of >= 2
    captions."""
    if "meru" not in stats or "clip" not in stats or not stats["meru"]["multi_paths"]:
        return "not comparable", "meru or clip missing, or no meru path with 2+ captions."
    m, c = stats["meru"], stats["clip"]
    a, b = m["kept_mean"] > c["kept_mean"], m["narrowing"] > 0
    parts = [f"{name}: {s['kept_mean']:.2f} captions kept per image ({s['true_share']:.0%} true "
             f"of the image, {s['generic_steps']:.0%} of steps no more specific)"
             for name, s in stats.items()]
    text = (f"{'; '.join(parts)}. MERU keeps {'more' if a else 'no more'} captions than CLIP "
            f"({m['kept_mean']:.2f} vs {c['kept_mean']:.2f}) and its paths "
            f"{'narrow' if b else 'do not narrow'} toward [ROOT] (first - last caption: "
            f"{m['narrowing']:+.2f} words).")
    return {2: "agrees", 1: "partly", 0: "disagrees"}[int(a) + int(b)], text


def traverse_run(run_dir: Path, data: str, max_samples: int, rule: str, steps: int = STEPS
                 ) -> tuple[list[list[str]], Embeddings]:
    """Every evaluated test image's path in one trained run (the model's own geometry and
    similarity; [ROOT] = the geometry's default root)."""
    model, dataset, tok = load_model_and_data(run_dir, data)
    emb = embed(model, dataset, tok, max_samples=max_samples, progress=False)
    pool = caption_pool(emb)
    cand = encode_texts(model, tok, pool)
    curv = model.curv().detach().float().cpu()

    def sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return model.similarity(a, b).float()

    paths = traverse_batch(emb.image, cand, pool, model.geometry, sim, curv, steps=steps,
                           rule=rule)
    return paths, emb


def example_table(paths: dict[str, list[list[str]]], emb: Embeddings, n: int = EXAMPLES
                  ) -> Table:
    """Rows: the first ``n`` evaluated images (own caption, then each model's path)."""
    rows = [[str(i), emb.captions[i], *(" > ".join(p[i]) or "(none)" for p in paths.values())]
            for i in range(min(n, len(emb)))]
    return Table(["image", "caption", *paths], rows,
                 "Example traversals, image -> [ROOT] (captions kept, most specific first)")


def stats_table(stats: dict[str, dict[str, Any]]) -> Table:
    return Table(["model", "kept / image", "no caption", "true of image", "generic steps",
                  "first - last words"],
                 [[name, f"{s['kept_mean']:.2f}", f"{s['empty_share']:.0%}",
                   f"{s['true_share']:.0%}", f"{s['generic_steps']:.0%}",
                   f"{s['narrowing']:+.2f}"] for name, s in stats.items()],
                 "Traversals of every evaluated test image")


def reproduce_traversal(
    out: str | Path = "reproduce-traversal", quick: bool = False, workers: int = 2,
    seed: int = 0, presets: Sequence[str] = PRESET_NAMES, rule: str = "mask",
) -> dict[str, Any]:
    """Train each preset on MAD (shared recipe), evaluate it, traverse from every evaluated test
    image; writes results.json, section.json, kept_histogram.png and report/."""
    t0 = time.perf_counter()
    budget = QUICK_BUDGET if quick else FULL_BUDGET
    out = Path(out)
    mad = ensure_mad(out / "mad", budget.digits, workers, seed)
    data = f"mad:{mad}"
    stats: dict[str, dict[str, Any]] = {}
    paths: dict[str, list[list[str]]] = {}
    run_dirs, emb = [], None
    for preset in presets:
        run_dir = Path(train(mad_recipe(preset, mad, out / "runs", budget, seed,
                                        {"run.progress": False}), overwrite=True))
        evaluate_run(run_dir, data, suites=("zeroshot", "retrieval"),
                     max_samples=budget.eval_samples, progress=False, analyse=False)
        paths[preset], emb = traverse_run(run_dir, data, budget.eval_samples, rule)
        stats[preset] = path_stats(paths[preset], emb.labels)
        run_dirs.append(run_dir)
        print(f"[traversal] {preset}: {len(paths[preset])} images, "
              f"{stats[preset]['kept_mean']:.2f} captions kept per image "
              f"({time.perf_counter() - t0:.0f} s)")
    fig = plot_kept_histogram({p: s["kept"] for p, s in stats.items()},
                              out / "kept_histogram.png")
    v, finding = verdict(stats)
    sec = Section(
        title="Image traversals to [ROOT]", paper="MERU / EuCLIP", claim=CLAIM,
        finding=f"Rule {rule!r}, {STEPS} steps. {finding}", verdict=v,
        tables=[stats_table(stats), example_table(paths, emb)], figures=[fig],
        headline={f"{p}: captions kept per image": s["kept_mean"] for p, s in stats.items()})
    results = {"rule": rule, "steps": STEPS, "verdict": v, "stats": stats,
               "examples": {p: ps[:EXAMPLES] for p, ps in paths.items()}}
    finish(out, "traversal", results, sec, run_dirs, "Image traversals on MAD")
    print(f"[traversal] {time.perf_counter() - t0:.0f} s")
    return results


parse_presets = names_parser("--presets", tuple(PRESETS))


register(Experiment(
    name="traversal", paper="MERU / EuCLIP", run=reproduce_traversal,
    help="MERU image traversals to [ROOT] for clip, euclip, meru, atmg; captions kept per "
    "image (EuCLIP Fig. 5)",
    description="Trains each preset on MAD with the same budget, walks from every evaluated "
    "test image to [ROOT] over a pool of test captions, their attribute-dropped versions and "
    "MAD chains, and reports captions kept per image, example paths and the claim vs result.",
    options=(Option("--presets", "comma-separated presets", ",".join(PRESET_NAMES),
                    parse_presets),
             Option("--rule", "retrieval rule: mask (MERU's script) or keep "
                    "(eval.traversal.traverse)", "mask", str, choices=RULES)),
))

__all__ = ["caption_pool", "parse_presets", "path_stats", "reproduce_traversal",
           "sub_captions", "verdict"]
