"""Wall time of every ``clipspace reproduce NAME`` (issue 13's budget: --quick under 2 minutes,
a full run under 20 minutes, on 2 CPU cores).

Every registered experiment (``reproduce radial`` needs a pretrained CLIP directory and is not
registered: docs/finetune.md). Each runs in a fresh process (``python -m clipspace.cli reproduce
NAME``), one after another, so imports and MAD generation count as a user sees them. Prints one
row per experiment: wall time, its share of the budget (comparable across machines: every
experiment's time is dominated by the same MAD training step), the verdict and the exit code;
with ``--json FILE`` also writes the rows.

Run: python benchmarks/experiments.py [--full] [--only close-gap,entropy] [--out DIR]
     [--json times.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clipspace.experiments import EXPERIMENTS

BUDGET_S = {"quick": 120.0, "full": 1200.0}


def run_one(name: str, out: Path, full: bool) -> dict:
    """Run ``reproduce name`` into ``out / name``; its wall time, exit code and verdict."""
    cmd = [sys.executable, "-m", "clipspace.cli", "reproduce", name, "--out", str(out / name)]
    if not full:
        cmd.append("--quick")
    log = out / f"{name}.log"
    start = time.perf_counter()
    with log.open("w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
    wall = time.perf_counter() - start
    section = out / name / "section.json"
    verdict = json.loads(section.read_text())["verdict"] if section.is_file() else "-"
    return {"experiment": name, "wall_s": round(wall, 1), "rc": rc, "verdict": verdict,
            "log": str(log)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="full runs instead of --quick")
    ap.add_argument("--only", default="", help="comma-separated experiment names")
    ap.add_argument("--out", default="", help="output directory (default: a temporary one)")
    ap.add_argument("--json", default="", help="also write the rows to this JSON file")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        sys.exit(f"unknown experiment(s): {', '.join(unknown)}; known: {', '.join(EXPERIMENTS)}")
    out = Path(args.out or tempfile.mkdtemp(prefix="clipspace-experiments-"))
    out.mkdir(parents=True, exist_ok=True)
    scale = "full" if args.full else "quick"
    print(f"{'experiment':<14} {'wall s':>8} {'of budget':>10}  verdict      rc")
    rows = []
    for name in names:
        row = run_one(name, out, args.full)
        row["budget_share"] = round(row["wall_s"] / BUDGET_S[scale], 3)
        rows.append(row)
        print(f"{name:<14} {row['wall_s']:>8.1f} {row['budget_share']:>10.2f}  "
              f"{row['verdict']:<12} {row['rc']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"scale": scale, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
