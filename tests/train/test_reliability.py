"""One writer per run, no code from checkpoint files, recovery from what a killed run leaves."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from clipspace import checkpoint as ckpt
from clipspace.cli import main
from clipspace.errors import ClipspaceError
from clipspace.train import train
from clipspace.train.rundir import RunExistsError, RunLock
from tests.helpers.configs import TINY, set_flags, tiny_config


def _cli_args(tiny_mad: Path, out: Path, name: str = "r", steps: int = 4) -> list[str]:
    return ["train", "--data", f"mad:{tiny_mad}", "--output-dir", str(out), "--name", name,
            "--steps", str(steps), "--batch-size", "32", "--save-every", "2", *set_flags(TINY),
            "--set", "run.progress=false", "--set", "run.tensorboard=false",
            "--set", "run.threads=1", "--set", "run.keep_last=0"]


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


def test_crafted_state_does_not_run_code(tiny_mad: Path, tmp_path: Path, capsys) -> None:
    assert main(_cli_args(tiny_mad, tmp_path)) == 0
    step = ckpt.latest_checkpoint(tmp_path / "r")
    _Evil.marker = tmp_path / "pwned"
    with open(step / ckpt.STATE_NAME, "wb") as fh:
        pickle.dump({"step": 4, "x": _Evil()}, fh)
    capsys.readouterr()
    assert main([*_cli_args(tiny_mad, tmp_path), "--resume", str(step)]) == 2
    err = capsys.readouterr().err
    assert "refused to load" in err and str(step / ckpt.STATE_NAME) in err
    assert not _Evil.marker.exists()


def test_state_holds_only_plain_data(tiny_mad: Path, tmp_path: Path) -> None:
    run = train(tiny_config("meru", tiny_mad, tmp_path, optim__steps=2))
    step = ckpt.latest_checkpoint(run)
    state = torch.load(step / ckpt.STATE_NAME, weights_only=True)  # no allow-list needed
    assert state["step"] == 2 and len(state["rng_all"]) == 1
    modes = {(step / n).stat().st_mode & 0o777 for n in (ckpt.WEIGHTS_NAME, ckpt.STATE_NAME)}
    assert len(modes) == 1  # model.safetensors and state.pt alike


def test_second_writer_is_refused_and_a_killed_lock_is_free(tiny_mad: Path, tmp_path: Path,
                                                            capsys) -> None:
    lock = RunLock(tmp_path / "r").acquire()
    try:
        assert main(_cli_args(tiny_mad, tmp_path)) == 2
        assert f"pid {os.getpid()}" in capsys.readouterr().err
        assert not (tmp_path / "r").exists()  # nothing was written
    finally:
        lock.release()
    code = ("import sys, time; from pathlib import Path; from clipspace.train.rundir import "
            f"RunLock; RunLock(Path({str(tmp_path / 'r')!r})).acquire(); print('held', "
            "flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"held"
    with pytest.raises(RunExistsError, match=f"pid {proc.pid}"):
        RunLock(tmp_path / "r").acquire()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    RunLock(tmp_path / "r").acquire().release()  # the kernel dropped the dead holder's lock
    assert main(_cli_args(tiny_mad, tmp_path)) == 0


def test_leftovers_of_a_killed_run_are_cleaned(tiny_mad: Path, tmp_path: Path) -> None:
    assert main(_cli_args(tiny_mad, tmp_path)) == 0
    root = tmp_path / "r" / ckpt.CKPT_DIR
    (root / ".step_6.abc.partial").mkdir()  # killed mid-write
    (root / ".step_2.deleting").mkdir()  # killed mid-prune
    half = root / "step_1"
    half.mkdir()
    (half / ckpt.WEIGHTS_NAME).write_bytes(b"")  # half-deleted: its state.pt is gone
    assert main([*_cli_args(tiny_mad, tmp_path, steps=6), "--resume", "latest"]) == 0
    assert sorted(p.name for p in root.iterdir()) == ["step_2", "step_4", "step_6"]


def test_corrupt_newest_checkpoint_falls_back(tiny_mad: Path, tmp_path: Path, capsys) -> None:
    assert main(_cli_args(tiny_mad, tmp_path)) == 0
    newest = ckpt.latest_checkpoint(tmp_path / "r")
    data = (newest / ckpt.WEIGHTS_NAME).read_bytes()
    (newest / ckpt.WEIGHTS_NAME).write_bytes(data[: len(data) // 2])  # truncated
    capsys.readouterr()
    assert main(["eval", str(newest), "--data", f"mad:{tiny_mad}", "--suite", "retrieval"]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main([*_cli_args(tiny_mad, tmp_path, steps=6), "--resume", "latest"]) == 0
    assert any(str(newest) in str(w.message) for w in seen)
    assert ckpt.latest_checkpoint(tmp_path / "r").name == "step_6"
    with pytest.raises(ClipspaceError, match="corrupt"):
        ckpt.load_checkpoint(newest, torch.nn.Linear(1, 1))


def test_output_dir_that_is_a_file_is_exit_2(tiny_mad: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "out").write_text("not a directory")
    assert main(_cli_args(tiny_mad, tmp_path / "out")) == 2
    assert "is a file" in capsys.readouterr().err
    assert (tmp_path / "out").read_text() == "not a directory"


def test_a_failed_start_can_be_retried_foreign_files_are_kept(tiny_mad: Path, tmp_path: Path,
                                                             capsys) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text("{}")  # what a run that failed on bad data leaves
    (run / "tokenizer.json").write_text("{}")
    assert main(_cli_args(tiny_mad, tmp_path)) == 0  # no --overwrite needed
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    assert main(_cli_args(tiny_mad, tmp_path, name="mine")) == 2
    assert (mine / "thesis.tex").read_text() == "precious"
