"""Per-step metrics: one JSON object per line in ``<run>/metrics.jsonl``, TensorBoard if present.

Only the main process writes. On resume, records after the resumed step are dropped so the file
reads as if the run had never been interrupted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from clipspace.errors import ClipspaceError
from clipspace.io import atomic_write_text


def _clean(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLogger:
    """Append ``{"step": N, ...}`` records; ``flush()`` writes them out (also on close)."""

    def __init__(
        self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = False
    ) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.enabled = enabled
        self._buffer: list[str] = []
        self._tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
            except Exception:  # tensorboard not installed: JSONL only
                self._tb = None

    def truncate_after(self, step: int) -> None:
        """Drop records with ``step > step`` (resume); TensorBoard purges them on its side."""
        if self._tb is not None:  # TensorBoard hides events after purge_step from earlier files
            from torch.utils.tensorboard import SummaryWriter

            log_dir = self._tb.log_dir
            self._tb.close()
            self._tb = SummaryWriter(log_dir, purge_step=step + 1)
        if not self.enabled or not self.path.exists():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                if int(json.loads(line).get("step", 0)) <= step:
                    keep.append(line)
            except (ValueError, json.JSONDecodeError):
                continue  # a torn last line from a killed run
        atomic_write_text(self.path, "".join(line + "\n" for line in keep))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        self._buffer.append(json.dumps(record))
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, step)

    def flush(self) -> None:
        if not self.enabled or not self._buffer:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write("".join(line + "\n" for line in self._buffer))
        self._buffer.clear()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        self.flush()
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of ``<run>/metrics.jsonl``; a bad line is an error naming the file and line
    (a torn last line of a killed run is dropped on resume, see ``truncate_after``)."""
    path = Path(run_dir) / "metrics.jsonl"
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ClipspaceError(f"{path}:{lineno}: invalid JSON: {err.msg}") from None
    return rows
