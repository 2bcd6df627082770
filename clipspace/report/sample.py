"""The embedding sample a run directory keeps for its report: ``embeddings_sample.npz``.

``experiments.common.evaluate_run`` writes it from its one embedding pass: a seeded random
subset of a few hundred test pairs (image and text points, integer labels such as ``digit`` and
MAD's global image ``index``, captions), the geometry and curvature c, and two quantities over
every evaluated pair that the report draws for all runs on shared axes: each point's distance
to [ROOT] (``analysis.gap.root_distances``) and the per-dimension mean difference
mean(image) - mean(text) of the L2-normalised points (``analysis.gap.mean_difference``).
Stored with ``data.embeddings_io.save_arrays`` (arrays + text fields in one ``.npz``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clipspace.data.embeddings_io import read_arrays, read_texts, save_arrays
from clipspace.errors import ClipspaceError

SAMPLE_FILE = "embeddings_sample.npz"
SAMPLE_PAIRS = 300
_ARRAYS = ("image", "text", "root_dist_image", "root_dist_text", "mean_difference")


def sample_rows(n_total: int, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded random subset of ``min(n, n_total)`` of ``n_total`` rows."""
    if n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, n, replace=False))


@dataclass
class EmbeddingSample:
    """A few hundred test pairs of one run (``image``, ``text``: (S, D) points; ``labels``:
    name -> (S,) ints; ``captions``: S strings), its ``geometry`` and curvature ``curv``, and
    over all N evaluated pairs ``root_dist_image`` / ``root_dist_text`` (N,) and
    ``mean_difference`` (D,)."""

    image: np.ndarray
    text: np.ndarray
    captions: list[str]
    geometry: str
    curv: float
    root_dist_image: np.ndarray
    root_dist_text: np.ndarray
    mean_difference: np.ndarray
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        """Write the sample atomically (``save_arrays``); ``load`` reads it back."""
        arrays: dict[str, Any] = {k: np.asarray(getattr(self, k), np.float32) for k in _ARRAYS}
        arrays.update({f"label_{k}": np.asarray(v, np.int64) for k, v in self.labels.items()})
        texts = {"captions": json.dumps(list(self.captions)), "geometry": self.geometry,
                 "curv": repr(float(self.curv))}
        return save_arrays(path, arrays, texts=texts)

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingSample:
        """Read a sample written by ``save``; a ClipspaceError names the file and what is
        missing."""
        arrays, texts = read_arrays(path, mmap=False), read_texts(path)
        missing = [k for k in _ARRAYS if k not in arrays] + [
            k for k in ("captions", "geometry", "curv") if k not in texts]
        if missing:
            raise ClipspaceError(f"{path}: not an embedding sample (missing {missing})")
        try:
            captions, curv = json.loads(texts["captions"]), float(texts["curv"])
        except ValueError as err:
            raise ClipspaceError(f"{path}: unreadable captions or curv ({err})") from None
        labels = {k[6:]: v for k, v in arrays.items() if k.startswith("label_")}
        return cls(captions=[str(c) for c in captions], geometry=texts["geometry"], curv=curv,
                   labels=labels, **{k: arrays[k] for k in _ARRAYS})


def take_sample(image: Any, text: Any, captions: list[str], labels: Mapping[str, np.ndarray],
                rows: np.ndarray) -> dict[str, Any]:
    """The per-pair fields of ``EmbeddingSample`` restricted to ``rows``."""
    return {"image": np.asarray(image)[rows], "text": np.asarray(text)[rows],
            "captions": [captions[i] for i in rows],
            "labels": {k: np.asarray(v)[rows] for k, v in labels.items()
                       if np.asarray(v).ndim == 1 and len(v) == len(captions)}}


__all__ = ["SAMPLE_FILE", "SAMPLE_PAIRS", "EmbeddingSample", "sample_rows", "take_sample"]
