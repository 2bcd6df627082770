"""What a report reads: run directories and experiment output directories.

A run directory holds ``config.json``, ``metrics.jsonl`` (one JSON object per logged step),
``eval.json`` (nested metrics of ``evaluate``, with ``dynamics``), ``analysis.json``,
``figures/*.png`` and ``embeddings_sample.npz`` (``report.sample``). An experiment output
directory holds ``section.json`` (its ``Section``) and its runs under ``runs/*``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipspace.data.mad import MADDataset
from clipspace.errors import ClipspaceError
from clipspace.report.sample import SAMPLE_FILE, EmbeddingSample
from clipspace.report.section import Section, read_json
from clipspace.train.logger import read_metrics
from clipspace.tree import flatten

RUN_FILES = ("config.json", "eval.json", "analysis.json", "metrics.jsonl")


class RunSummary:
    """Everything a report shows about one run directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        if not self.dir.is_dir():
            raise ClipspaceError(f"run directory not found: {self.dir}")
        self.name = self.dir.name
        cfg_path = self.dir / "config.json"
        self.config = flatten(read_json(cfg_path)) if cfg_path.exists() else {}
        self.metrics = read_metrics(self.dir)
        self.nested: dict[str, Any] = {}
        for fname in ("eval.json", "analysis.json"):
            path = self.dir / fname
            if path.exists():
                self.nested.update(read_json(path))
        self.results = flatten(self.nested)
        self.figures = sorted((self.dir / "figures").glob("*.png"))
        path = self.dir / SAMPLE_FILE
        self.sample = EmbeddingSample.load(path) if path.exists() else None

    def numeric_results(self) -> dict[str, float]:
        """Every number of eval.json and analysis.json by dotted key (booleans left out)."""
        return {k: float(v) for k, v in self.results.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def mad_dir(self) -> Path | None:
        """The MAD directory the run trained on (``data.train = "mad:DIR"``), if any."""
        train = str(self.config.get("data.train", ""))
        return Path(train[4:]) if train.startswith("mad:") else None


def mad_images(run: RunSummary, rows: Sequence[int]) -> tuple[list[np.ndarray], str]:
    """(HWC uint8 images of the sample rows ``rows``, "" or why there are none): the images of
    the sample's MAD ``index`` labels, read from the run's MAD directory."""
    root = run.mad_dir()
    if run.sample is None or "index" not in run.sample.labels:
        return [], f"{run.name}: no embedding sample with MAD image indices"
    if root is None:
        return [], f"{run.name}: not trained on MAD (data.train is not mad:DIR)"
    try:
        data = MADDataset(root, split="all")
    except ClipspaceError as err:
        return [], f"{run.name}: {err}"
    where = {int(g): i for i, g in enumerate(data.indices)}
    index = run.sample.labels["index"]
    return [data.image_array(where[int(index[r])]) for r in rows
            if int(index[r]) in where], ""


def unique_names(runs: Sequence[RunSummary]) -> None:
    """Rename runs that share a directory name by their trailing path parts (``expA/runs/clip``
    vs ``expB/runs/clip``), so every table column and legend entry names one run."""
    depth = 1
    while len({r.name for r in runs}) < len(runs) and depth < 8:
        depth += 1
        names = [r.name for r in runs]
        for run in runs:
            if names.count(run.name) > 1:
                run.name = "/".join(run.dir.resolve().parts[-depth:])


def _is_run(path: Path) -> bool:
    return any((path / f).exists() for f in RUN_FILES)


def collect(paths: Sequence[str | Path]) -> tuple[list[Path], list[Section]]:
    """(run directories, sections) of ``paths``: each a run directory, or an experiment output
    directory (``section.json`` and/or ``runs/*``) whose section and runs are all taken."""
    runs: list[Path] = []
    sections: list[Section] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise ClipspaceError(f"report: not a directory: {p}")
        found = False
        if (p / "section.json").is_file():
            sections.append(Section.load(p / "section.json"))
            found = True
        if (p / "runs").is_dir():
            sub = sorted(d for d in (p / "runs").iterdir() if d.is_dir() and _is_run(d))
            runs += sub
            found = found or bool(sub)
        if _is_run(p):
            runs.append(p)
            found = True
        if not found:
            raise ClipspaceError(f"report: {p} is neither a run directory (config.json, "
                                 "eval.json, ...) nor an experiment directory (section.json, "
                                 "runs/*)")
    return list(dict.fromkeys(runs)), sections


__all__ = ["RunSummary", "collect", "mad_images", "unique_names"]
