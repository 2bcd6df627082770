"""FSDP2 (``run.parallel=fsdp``) on 2 gloo processes: same weights and losses as one process on
the global batch, sharded checkpoints that resume on another world size, consolidated export."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from clipspace import config as C
from clipspace.checkpoint import SHARDED_NAME, list_checkpoints
from clipspace.cli import main
from clipspace.config import ConfigError
from clipspace.models import create_model, load_model_and_tokenizer
from clipspace.train import train
from clipspace.train.fsdp import mixed_precision, shard_units
from clipspace.train.logger import read_metrics
from tests.helpers.configs import tiny_config

STEPS = 5
FSDP = {"run__parallel": "fsdp"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Crash(RuntimeError):
    pass


def _hooks(crash_at: int) -> list[Any]:
    """A hook that raises at step ``crash_at`` (after that step, before its checkpoint)."""

    def hook(model: Any, step: int, run_dir: Path) -> dict[str, float]:
        if step == crash_at:
            raise _Crash(f"simulated crash at step {step}")
        return {}

    return [hook]


def _worker(rank: int, world: int, port: int, cfg_dict: dict, crash_at: int,
            resume: str | None) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
        WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
    )
    import clipspace.train.engine as engine
    import clipspace.train.fsdp as fsdp

    calls: list[int] = []
    shards: list[int] = []
    flat, shard = engine.average_gradients, fsdp.shard_model

    def spy_reduce(params: Any, info: Any) -> None:  # counts the engine's flat all-reduces
        calls.append(1)
        flat(params, info)

    def spy_shard(model: Any, *args: Any) -> Any:  # counts the DTensor parameters after sharding
        out = shard(model, *args)
        shards.append(sum(type(p).__name__ == "DTensor" for p in model.parameters()))
        return out

    engine.average_gradients, fsdp.shard_model = spy_reduce, spy_shard
    cfg = C.from_dict(cfg_dict)
    try:
        train(cfg, resume=resume, hooks=_hooks(crash_at))  # -1: never
    except _Crash:
        pass
    Path(cfg.run.output_dir, f"{cfg.run.name}-{rank}.txt").write_text(
        f"{len(calls)} {shards[0] if shards else -1}")


def _spawn(cfg: C.Config, world: int = 2, crash_at: int = -1, resume: str | None = None
           ) -> list[tuple[int, int]]:
    """Train ``cfg`` on ``world`` gloo processes; per rank (flat all-reduces, DTensor params)."""
    # fork: the workers inherit the imported torch and clipspace (spawn re-imports them, ~10 s
    # per process on a loaded 2-core machine); the parent holds no process group or threads
    mp.start_processes(_worker, args=(world, _free_port(), C.to_dict(cfg), crash_at, resume),
                       nprocs=world, join=True, start_method="fork")
    out = Path(cfg.run.output_dir)
    return [tuple(int(x) for x in (out / f"{cfg.run.name}-{r}.txt").read_text().split())
            for r in range(world)]


def _losses(run: Path) -> list[dict[str, float]]:
    return [r for r in read_metrics(run) if "loss" in r]


def _assert_same_curve(ref: Path, run: Path, atol: float = 1e-5) -> None:
    one, two = _losses(ref), _losses(run)
    assert [r["step"] for r in two] == [r["step"] for r in one] == list(range(1, STEPS + 1))
    for a, b in zip(one, two, strict=True):
        for key in ("loss", "loss/contrastive", "loss/entailment", "curv", "logit_scale"):
            if key in a:
                assert abs(a[key] - b[key]) < atol, (a["step"], key, a[key], b[key])


def _assert_close_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
                          atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=atol, rtol=0, msg=name)


def _final(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step_{STEPS}" / "model.safetensors"))


def _hook_metrics(run: Path) -> dict[tuple[int, str], float]:
    return {(r["step"], k): v for r in read_metrics(run) for k, v in r.items()
            if k.startswith(("val/", "dyn/"))}


#: the ConvNet image tower has no blocks: it is sharded whole (GroupNorm: exact over ranks).
#: Its stem's weights end 1.07e-5 from one process after 5 steps under DDP as well (float
#: rounding of the split batch, amplified by Adam; FSDP is within 4e-9 of DDP): tolerance 3e-5
CONVNET = {"model__image__kind": "convnet", "model__image__norm": "group"}


@pytest.mark.parametrize(("preset", "tower"), [("clip", {}), ("meru", {}), ("atmg", {}),
                                               ("meru", CONVNET)],
                         ids=["clip", "meru", "atmg", "meru-convnet"])
def test_fsdp_two_processes_match_one_process(preset: str, tower: dict[str, str],
                                              tiny_mad: Path, tmp_path: Path) -> None:
    """Weights, losses and the exported / final model of 2 FSDP ranks equal 1 process; clip
    and meru also run the validation, evaluation and analysis hooks (on the gathered model;
    meru's validation entailment term is a local-batch mean, averaged over ranks)."""
    hooks = dict(data__val=f"mad:{tiny_mad}", run__eval_every=2, run__eval_samples=40,
                 run__analysis_every=2, run__analysis_samples=32)
    hooks = hooks if preset in ("clip", "meru") and not tower else {}
    single = train(tiny_config(preset, tiny_mad, tmp_path, name="single", optim__steps=STEPS,
                               **hooks, **tower))
    cfg = tiny_config(preset, tiny_mad, tmp_path, name="fsdp", optim__steps=STEPS, **hooks,
                      **tower, **FSDP)
    stats = _spawn(cfg)
    run = tmp_path / "fsdp"
    ref_hooks, fsdp_hooks = _hook_metrics(single), _hook_metrics(run)
    assert ref_hooks.keys() == fsdp_hooks.keys()
    if hooks:  # val/ at steps 2, 4, 5; dyn/ at 0, 2, 4, 5
        assert {s for s, k in ref_hooks if k == "val/loss"} == {2, 4, 5}
        assert {s for s, k in ref_hooks if k == "dyn/l2m"} == {0, 2, 4, 5}
    for key, value in ref_hooks.items():
        assert abs(fsdp_hooks[key] - value) < 1e-4, (key, value, fsdp_hooks[key])
    # FSDP reduce-scatters in the backward: the engine never all-reduces; every parameter but
    # the 0-dim scalars (left whole, fully_shard refuses them) is a DTensor shard
    params = list(load_model_and_tokenizer(single)[0].parameters())
    n_sharded = sum(p.ndim > 0 for p in params)
    assert 0 < n_sharded < len(params)
    assert stats == [(0, n_sharded), (0, n_sharded)]
    _assert_same_curve(single, run)
    # the last checkpoint holds the shards, the bookkeeping and the gathered full weights
    last = run / "checkpoints" / f"step_{STEPS}"
    assert sorted(p.name for p in last.iterdir()) == ["model.safetensors", SHARDED_NAME,
                                                      "state.pt"]
    _assert_close_weights(_final(single), _final(run), atol=3e-5 if tower else 1e-5)
    # the offline export of the shards (`clipspace export`) equals the gathered weights; a
    # normal checkpoint is refused with exit code 2
    exported = tmp_path / "exported.safetensors"
    assert main(["export", str(run), "--out", str(exported)]) == 0
    _assert_close_weights(_final(run), load_file(str(exported)))
    assert main(["export", str(single)]) == 2
    if preset == "clip":  # a normal (ddp) checkpoint is refused by a sharded model
        with pytest.raises(Exception, match=r"run\.parallel.*ddp run"):
            _spawn(cfg, resume=str(single))
    # eval reads the FSDP run unchanged: same outputs as the single-process model
    m1, tok = load_model_and_tokenizer(single)
    m2, tok2 = load_model_and_tokenizer(run)
    images = torch.randn(4, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    tokens = tok2(["a red stroke", "a blue swelling", "x", "scale"])
    with torch.no_grad():
        torch.testing.assert_close(m2.encode_image(images), m1.encode_image(images),
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(m2.encode_text(tokens), m1.encode_text(tok(
            ["a red stroke", "a blue swelling", "x", "scale"])), atol=1e-5, rtol=0)


def test_fsdp_resume_on_other_world_size(tiny_mad: Path, tmp_path: Path) -> None:
    """Stopped after step 3 under FSDP on 2 ranks, resumed on 1 process (DCP into the plain
    model); and stopped on 1 process, resumed on 2 ranks: the loss curve of the run that never
    stopped, and its weights."""
    common = dict(optim__steps=STEPS, run__save_every=1, run__keep_last=2, run__eval_every=1)
    ref = train(tiny_config("meru", tiny_mad, tmp_path, name="ref", **common, **FSDP),
                hooks=_hooks(-1))
    # 2 -> 1
    cfg = tiny_config("meru", tiny_mad, tmp_path, name="two2one", **common, **FSDP)
    _spawn(cfg, crash_at=4)
    run = tmp_path / "two2one"
    assert [s for s, _ in list_checkpoints(run)] == [2, 3]  # keep_last over sharded steps
    step3 = run / "checkpoints" / "step_3"
    assert sorted(p.name for p in step3.iterdir()) == [SHARDED_NAME, "state.pt"]
    assert len(list((step3 / SHARDED_NAME).glob("*.distcp"))) == 2  # one file per rank
    train(cfg, resume="latest", hooks=_hooks(-1))
    _assert_same_curve(ref, run)
    _assert_close_weights(_final(ref), _final(run))
    # 1 -> 2
    cfg = tiny_config("meru", tiny_mad, tmp_path, name="one2two", **common, **FSDP)
    with pytest.raises(_Crash):
        train(cfg, hooks=_hooks(4))
    run = tmp_path / "one2two"
    assert (run / "checkpoints" / "step_3" / SHARDED_NAME / ".metadata").is_file()
    _spawn(cfg, resume="latest")
    _assert_same_curve(ref, run)
    _assert_close_weights(_final(ref), _final(run))


def test_fsdp_bf16_mixed_precision_is_finite(tiny_mad: Path, tmp_path: Path) -> None:
    """bf16 parameters for compute, float32 reduction, 3 steps on 2 CPU ranks: finite losses."""
    cfg = tiny_config("meru", tiny_mad, tmp_path, name="bf16", optim__steps=3,
                      run__precision="bf16", **FSDP)
    _spawn(cfg)
    losses = [r["loss"] for r in _losses(tmp_path / "bf16")]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    weights = load_file(str(tmp_path / "bf16" / "checkpoints" / "step_3" / "model.safetensors"))
    assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights.values())


def test_fsdp_gradient_cached_accumulation(tiny_mad: Path, tmp_path: Path) -> None:
    """optim.accum_steps=2 (the gradient-cached path through encode_image / encode_text) under
    FSDP on 2 ranks: the losses and weights of one process with the same accumulation."""
    single = train(tiny_config("meru", tiny_mad, tmp_path, name="single", optim__steps=STEPS,
                               optim__accum_steps=2))
    cfg = tiny_config("meru", tiny_mad, tmp_path, name="fsdp", optim__steps=STEPS,
                      optim__accum_steps=2, **FSDP)
    assert all(calls == 0 and n > 0 for calls, n in _spawn(cfg))
    _assert_same_curve(single, tmp_path / "fsdp")
    _assert_close_weights(_final(single), _final(tmp_path / "fsdp"))


def test_fsdp_precision_and_config(tiny_mad: Path, tmp_path: Path) -> None:
    """bf16: bf16 parameters for compute, float32 reduction; fp32: no casting; an unknown
    run.parallel is refused naming the key."""
    bf16 = mixed_precision(tiny_config("clip", tiny_mad, tmp_path, run__precision="bf16"),
                           torch.device("cpu"))
    assert (bf16.param_dtype, bf16.reduce_dtype) == (torch.bfloat16, torch.float32)
    fp32 = mixed_precision(tiny_config("clip", tiny_mad, tmp_path), torch.device("cpu"))
    assert (fp32.param_dtype, fp32.reduce_dtype) == (None, None)
    with pytest.raises(ConfigError, match=r"run\.parallel"):
        train(tiny_config("clip", tiny_mad, tmp_path, run__parallel="zero3"))


def test_shard_units_are_the_blocks_or_the_whole_tower(tiny_mad: Path, tmp_path: Path) -> None:
    """ViT towers: one unit per transformer block; the ConvNet image tower: the tower."""
    cfg = tiny_config("clip", tiny_mad, tmp_path, model__image__depth=2, model__text__depth=3)
    model = create_model(cfg)
    units = shard_units(model)
    assert units == [*model.visual.transformer.blocks, *model.text.transformer.blocks]
    conv = create_model(tiny_config("clip", tiny_mad, tmp_path, model__image__kind="convnet"))
    assert shard_units(conv)[0] is conv.visual
