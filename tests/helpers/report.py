"""Run and experiment directories for the report tests, built from random numbers (no model):
config, metrics, eval/analysis JSON with ablation curves, and an ``embeddings_sample.npz``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from clipspace.analysis.gap import root_distances
from clipspace.geometry import GEOMETRIES
from clipspace.report import EmbeddingSample, Section, Table

GEOMETRY_OF = {"clip": "sphere", "euclip": "euclidean", "meru": "lorentz", "atmg": "lorentz"}


def random_sample(geometry: str, n: int = 40, dim: int = 6, seed: int = 0,
                  curv: float = 1.0) -> EmbeddingSample:
    """A sample of ``n`` random pairs in ``geometry`` with digits and (fake) MAD indices."""
    rng = np.random.default_rng(seed)
    img = rng.normal(size=(n, dim)) + 1.0
    txt = rng.normal(size=(n, dim)) - 1.0
    if geometry == "sphere":
        img /= np.linalg.norm(img, axis=1, keepdims=True)
        txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    dists = root_distances(img, txt, GEOMETRIES[geometry], curv)
    return EmbeddingSample(
        image=img, text=txt, captions=[f"caption {i} of {geometry}" for i in range(n)],
        geometry=geometry, curv=curv, root_dist_image=dists["image"],
        root_dist_text=dists["text"],
        mean_difference=img.mean(0) - txt.mean(0),
        labels={"digit": rng.integers(0, 10, n), "index": np.arange(n)})


def report_run(root: Path, name: str, r1: float = 0.5, lr: float = 1e-3, seed: int = 0,
               mad: Path | None = None) -> Path:
    """A finished-looking run ``root/name`` of preset ``name`` (geometry from ``GEOMETRY_OF``);
    ``mad``: its config names that MAD directory as training data."""
    run = root / name
    run.mkdir(parents=True)
    cfg = {"preset": name, "geometry": {"name": GEOMETRY_OF.get(name, "sphere")},
           "optim": {"lr": lr, "steps": 5},
           "data": {"train": f"mad:{mad}" if mad else "csv:train.csv"}}
    (run / "config.json").write_text(json.dumps(cfg))
    rows = [{"step": s, "loss": 3.0 - 0.1 * s * (seed + 1), "logit_scale": 14.0 + s}
            for s in range(5)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ev = {"zeroshot": {"digit": {"top1": r1 / 2}}, "retrieval": {"i2t_r1": r1, "t2i_r1": r1},
          "hierarchy": {"tau_d": 0.1 * seed, "precision": 0.3, "recall": 0.2},
          "dynamics": {"entropy_rel": 0.7}}
    (run / "eval.json").write_text(json.dumps(ev))
    ks = list(range(4))
    ablation = {"k": ks, "dims": [0, 1, 2], "l2m": 0.4, "l2i": [1.0 - 0.1 * k for k in ks],
                "i2t_r1": [r1 - 0.01 * k * (seed + 1) for k in ks]}
    (run / "analysis.json").write_text(json.dumps({"gap": {"rmg": 0.4}, "moad": {"moad": 0.1},
                                                   "ablation": ablation}))
    geometry = GEOMETRY_OF.get(name, "sphere")
    random_sample(geometry, seed=seed).save(run / "embeddings_sample.npz")
    return run


def experiment_dir(root: Path, names: tuple[str, ...] = ("clip", "meru"),
                   verdict: str = "partly") -> tuple[Path, Section]:
    """An experiment output directory: ``section.json`` and ``runs/<name>`` for each name."""
    root.mkdir(parents=True)
    for i, name in enumerate(names):
        report_run(root / "runs", name, r1=0.2 + 0.1 * i, seed=i)
    sec = Section(title="Toy experiment", paper="Toy paper", claim="x grows with y",
                  finding="x grew from 1 to 2", verdict=verdict,
                  tables=[Table(["k", "x"], [["1", "1.0"], ["2", "2.0"]], "x against k")],
                  headline={"x at k=2": 2.0})
    sec.save(root / "section.json")
    return root, sec


def tiny_png(path: Path, red: int = 200) -> Path:
    """An 8 x 8 PNG whose red channel is ``red``."""
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :, 0] = red
    Image.fromarray(img).save(path)
    return path
