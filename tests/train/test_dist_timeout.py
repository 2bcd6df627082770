"""``run.dist_timeout``: the process group's timeout, so a frozen rank stops the others after
that many seconds (not torch's 30 minutes) with an error naming the collective."""

from __future__ import annotations

import datetime
import multiprocessing
import os
import signal
import socket
from typing import Any

import pytest
import torch
import torch.distributed as dist

from clipspace.train import distributed as D


def test_timeout_passed_to_init_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: seen.append(kw))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    info = D.init_distributed(torch.device("cpu"))  # the call train.loop makes today
    assert seen[-1]["timeout"] == datetime.timedelta(seconds=300)
    assert info.rank == 1 and info.timeout_s == 300
    info = D.init_distributed(torch.device("cpu"), timeout_s=7.5)
    assert seen[-1]["timeout"] == datetime.timedelta(seconds=7.5)
    assert seen[-1]["backend"] == "gloo" and info.timeout_s == 7.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank(rank: int, port: int, out: Any) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = D.init_distributed(torch.device("cpu"), timeout_s=3)
    if rank == 1:
        os.kill(os.getpid(), signal.SIGSTOP)  # a frozen rank: alive, never answers
        return
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    try:
        D.average_gradients([p], info)
    except RuntimeError as err:
        out.put(str(err))
    else:
        out.put("no error")


def test_frozen_rank_times_out_naming_the_collective() -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, port, out), daemon=True) for r in (0, 1)]
    for p in procs:
        p.start()
    try:
        msg = out.get(timeout=120)  # rank 0's answer, about 3 s after it started waiting
    finally:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signal.SIGKILL)
            p.join(timeout=30)
    assert "rank 0 of 2: all_reduce of gradients failed" in msg
    assert "run.dist_timeout=3 s" in msg and "rank 1 stopped answering" in msg
