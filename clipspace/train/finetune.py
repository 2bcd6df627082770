"""Text-tower fine-tuning of a pretrained CLIP: Radial Embedding (RE) and the entailment-cone (EC)
baseline (docs/reference.md section 3; Alper & Averbuch-Elor, "Emergent Visual-Semantic Hierarchies
in Image-Text Representations", ECCV 2024).

Per step, on a batch of B chains (positives p1..p4 generic -> specific, sibling negatives n1..n4):

* only ``model.text`` and ``model.text_proj`` train; every other parameter (image tower and
  projection, logit scale, curvature, alphas) is frozen (``requires_grad = False``);
* root r = text embedding of "" recomputed every step with the trainable tower (gradients flow
  through it); all 8B captions are embedded by the trainable model and by a frozen deep copy of
  the original text tower + projection;
* RE: L = lambda_p L_P + lambda_e L_E + lambda_m L_M (``losses.radial.radial_loss``);
  EC: relu cone terms + lambda_p L_P (``losses.radial.entailment_cone_finetune_loss``).

Embeddings are the model's points: L2-normalised vectors for sphere models (the paper: Xi_r is
the Euclidean exterior angle between unit vectors), which ``radial_loss`` handles with its default
Euclidean geometry; for Euclidean / Lorentz clipspace models the model's own geometry and
curvature are passed (a generalisation, not in the paper).

The model stays in eval mode (CLIP has no dropout; BatchNorm statistics of a ConvNet image tower
must not move). Data order: one permutation of the chains per epoch from ``(run.seed, epoch)``,
so the data position is a pure function of the step and a resumed run continues exactly.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from clipspace import checkpoint as ckpt
from clipspace import config as C
from clipspace.config import Config, ConfigError
from clipspace.data.chains import Chain, mad_chains
from clipspace.data.hierarcaps import read_hierarcaps_train
from clipspace.errors import ClipspaceError, DataError
from clipspace.io import atomic_write_text
from clipspace.losses.radial import entailment_cone_finetune_loss, radial_loss
from clipspace.models import load_model_and_tokenizer
from clipspace.models.hf_clip import HFClipModel, copy_side_files, find_hf_base, save_hf
from clipspace.train.distributed import DistInfo
from clipspace.train.engine import Engine, Job
from clipspace.train.loop import autocast_factory, pick_device
from clipspace.train.optim import WarmupCosine, build_optimizer
from clipspace.train.rundir import RunPlan, begin, choose_run_dir, load_resume, run_name
from clipspace.train.state import TrainState, restore_rng, seed_everything

Tokenizer = Callable[[Sequence[str]], Tensor]
#: sections taken from the loaded model, not from the fine-tuning config
MODEL_SECTIONS = ("geometry", "loss", "model")
INFO_NAME = "finetune.json"


# ---- inputs -------------------------------------------------------------------------------------


def load_chains(data: str, seed: int = 0) -> list[Chain]:
    """``hierarcaps:TRAIN_CSV`` (``read_hierarcaps_train``) or ``mad:DIR`` (train-split chains)."""
    kind, sep, path = data.partition(":")
    if not sep or not path:
        raise DataError(f"fine-tuning data {data!r} must be hierarcaps:TRAIN_CSV or mad:DIR")
    if kind == "hierarcaps":
        return read_hierarcaps_train(path)
    if kind == "mad":
        return mad_chains(path, split="train", seed=seed)
    raise DataError(f"fine-tuning data {data!r}: scheme {kind!r} not supported (hierarcaps, mad)")


def merged_config(model: nn.Module, config: Config) -> Config:
    """``config`` (finetune, optim, data, run) with the model's geometry / loss / model sections."""
    cfg = C.from_dict(C.to_dict(config))
    base = getattr(model, "config", None)
    if base is not None:
        for name in MODEL_SECTIONS:
            setattr(cfg, name, copy.deepcopy(getattr(base, name)))
        cfg.preset = base.preset
    return cfg


# ---- model surgery ------------------------------------------------------------------------------


def trainable_names(model: nn.Module) -> list[str]:
    """Names of the text tower and text projection parameters (the only ones that train)."""
    return [n for n, _ in model.named_parameters() if n.startswith(("text.", "text_proj."))]


def freeze_all_but_text(model: nn.Module) -> list[nn.Parameter]:
    """``requires_grad`` only on ``model.text`` and ``model.text_proj``; returns those params."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = [*model.text.parameters(), *model.text_proj.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


class FrozenText(nn.Module):
    """Deep copy of the original text tower + projection (the pullback target); features become
    points with the model's own (frozen during fine-tuning) text point map and curvature."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.text = copy.deepcopy(model.text)
        self.text_proj = copy.deepcopy(model.text_proj)
        for p in self.parameters():
            p.requires_grad_(False)
        self._points: Callable[[Tensor], Tensor] = lambda f: model.text_map(f, model.curv())
        self.eval()

    @torch.no_grad()
    def forward(self, tokens: Tensor) -> Tensor:
        return self._points(self.text_proj(self.text(tokens)))


def _geometry_args(model: nn.Module) -> tuple[Any, Any]:
    """(geometry, curv) for the RE angles: None (Euclidean on unit vectors) for sphere models."""
    if getattr(model.geometry, "HAS_ORIGIN", True) is False:
        return None, 1.0
    return model.geometry, model.curv()


def finetune_loss(
    model: nn.Module,
    frozen: nn.Module,
    tokenizer: Tokenizer,
    chains: Sequence[Chain],
    cfg: Config,
    device: torch.device | str = "cpu",
) -> dict[str, Tensor]:
    """The loss of one fine-tuning step on ``chains`` (RE or EC by ``cfg.finetune.method``).

    Embeds the 8 captions of every chain (positives then negatives) and "" with the trainable
    model, and the same captions with ``frozen``."""
    b = len(chains)
    texts = [c for ch in chains for c in (*ch.positive[:4], *ch.negative[:4])]
    tokens = tokenizer(texts).to(device)
    root_tokens = tokenizer([""]).to(device)
    emb = model.encode_text(torch.cat([root_tokens, tokens], 0)).float()
    root, tuned = emb[0], emb[1:]
    with torch.no_grad():
        target = frozen(tokens).float()
    per = tuned.reshape(b, 8, -1)
    pos, neg = per[:, :4], per[:, 4:]
    geometry, curv = _geometry_args(model)
    ft = cfg.finetune
    if ft.method == "re":
        return radial_loss(root, pos, neg, tuned, target, lambda_p=ft.lambda_p,
                           lambda_e=ft.lambda_e, lambda_m=ft.lambda_m, geometry=geometry,
                           curv=curv)
    if ft.method == "ec":
        return entailment_cone_finetune_loss(root, pos, neg, tuned, target,
                                             min_radius=ft.ec_min_radius, margin=ft.ec_margin,
                                             lambda_p=ft.lambda_p, geometry=geometry, curv=curv)
    raise ConfigError(f"config key 'finetune.method': {ft.method!r}; allowed: re, ec")


# ---- run directory ------------------------------------------------------------------------------


def write_side_files(run_dir: Path, model: nn.Module, tokenizer: Any, source: str) -> None:
    """tokenizer.json and, for transformers models, ``hf_base`` (config, tokenizer and
    preprocessor files of the source directory, no weights)."""
    if isinstance(model, HFClipModel):
        base = find_hf_base(source) if source else None
        base = base or (Path(model.source) if model.source else None)
        if base is None:
            raise ClipspaceError("fine-tuning an HF model object needs its source directory")
        if base.resolve() != (run_dir / "hf_base").resolve():
            copy_side_files(base, run_dir / "hf_base")
        if (base / "tokenizer.json").is_file():
            shutil.copy2(base / "tokenizer.json", run_dir / ckpt.TOKENIZER_NAME)
    elif hasattr(tokenizer, "save"):
        tokenizer.save(run_dir / ckpt.TOKENIZER_NAME)


def _model_and_tokenizer(
    source: str | Path | nn.Module, tokenizer: Tokenizer | None
) -> tuple[nn.Module, Any, str]:
    if isinstance(source, nn.Module):
        tok = tokenizer or getattr(source, "tokenizer", None)
        if tok is None:
            raise ClipspaceError("finetune(model object, ...) needs tokenizer=")
        return source, tok, str(getattr(source, "source", "") or "")
    model, tok = load_model_and_tokenizer(source)
    if tokenizer is None and tok is None:
        raise ClipspaceError(f"--model {source}: no tokenizer.json next to the checkpoint")
    return model, tokenizer or tok, str(source)


def chain_job(cfg: Config, model: nn.Module, frozen: nn.Module, tok: Tokenizer,
              chains: list[Chain], device: torch.device, run_dir: Path) -> Job:
    """One permutation of the chains per epoch from (run.seed, epoch); the step is the RE / EC
    loss of ``data.batch_size`` chains."""
    batch, autocast = cfg.data.batch_size, autocast_factory(cfg, device)

    def batches(epoch: int, skip: int):
        order = np.random.default_rng([cfg.run.seed, epoch]).permutation(len(chains))
        for pos in range(skip, math.ceil(len(chains) / batch)):
            yield [chains[i] for i in order[pos * batch : (pos + 1) * batch]]

    def step(picked: list[Chain]) -> dict[str, Any]:
        with autocast():
            out = finetune_loss(model, frozen, tok, picked, cfg, device)
        out["loss"].backward()
        return {k: v.detach() for k, v in out.items()}

    return Job(name=f"finetune {run_dir.name}", batches=batches, step=step,
               samples_per_step=batch, empty_error=f"{cfg.data.train!r} has no chains")


# ---- the job ------------------------------------------------------------------------------------


def finetune(
    model_dir_or_model: str | Path | nn.Module,
    config: Config,
    data: str,
    resume: str | None = None,
    overwrite: bool = False,
    *,
    steps: int = 0,
    tokenizer: Tokenizer | None = None,
    export_hf: bool = False,
) -> Path:
    """Fine-tune the text tower with RE / EC on chains from ``data``; return the run directory.

    Args:
        model_dir_or_model: a clipspace run / checkpoint, an HF CLIP directory, or a model
            object (then pass ``tokenizer``; an HF model object fine-tunes from its ``source``).
        config: fine-tuning settings (``finetune.*``, ``optim.*``, ``data.batch_size``,
            ``run.*``); geometry / loss / model come from the loaded model.
        data: ``hierarcaps:TRAIN_CSV`` or ``mad:DIR``.
        resume: ``"latest"`` or a checkpoint / run directory.
        steps: total optimizer steps (0: ``finetune.epochs`` passes over the chains).
        export_hf: also write ``<run>/hf`` (transformers-loadable) for HF models.

    Writes ``<run>/config.json``, ``finetune.json``, ``tokenizer.json`` (+ ``hf_base/`` for HF),
    ``metrics.jsonl`` and ``checkpoints/step_N``; ``create_model(pretrained=<run>)`` reloads it.
    """
    C.validate(config)
    model, tok, source = _model_and_tokenizer(model_dir_or_model, tokenizer)
    cfg = merged_config(model, config)
    cfg.data.train = data
    pick_device(cfg)  # a bad run.device fails before any work
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    chains = load_chains(data, cfg.run.seed)
    per_epoch = math.ceil(len(chains) / cfg.data.batch_size)
    cfg.optim.steps = int(steps) if steps > 0 else per_epoch * cfg.finetune.epochs
    if resume == "latest" and not cfg.run.name:
        raise ConfigError("--resume latest needs a run name (config key 'run.name' / --name)")
    cfg.run.name = run_name(cfg, f"finetune-{cfg.finetune.method}")
    info = DistInfo()  # fine-tuning runs in one process
    plan = choose_run_dir(cfg, resume, overwrite, info)
    try:
        return _finetune_in(plan, cfg, model, tok, source, data, resume, chains, per_epoch,
                            export_hf)
    finally:
        if plan.lock is not None:
            plan.lock.release()


def _finetune_in(plan: RunPlan, cfg: Config, model: nn.Module, tok: Tokenizer, source: str,
                 data: str, resume: str | None, chains: list[Chain], per_epoch: int,
                 export_hf: bool) -> Path:
    run_dir, info, device = plan.run_dir, DistInfo(), pick_device(cfg)

    seed_everything(cfg.run.seed)
    model = model.to(device).eval()
    frozen = FrozenText(model).to(device)  # the original weights, also when resuming
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    freeze_all_but_text(model)
    optimizer = build_optimizer(model, cfg.optim)
    state = TrainState(model, optimizer, WarmupCosine(optimizer, cfg.optim))
    rng = load_resume(plan, resume, state)

    def side_files(d: Path) -> None:
        write_side_files(d, model, tok, source)
        info_json = {"source": source, "data": data, "method": cfg.finetune.method,
                     "chains": len(chains), "steps": cfg.optim.steps, "steps_per_epoch": per_epoch,
                     "trainable": trainable_names(model)[:4] + ["..."]}
        atomic_write_text(d / INFO_NAME, json.dumps(info_json, indent=2) + "\n")

    logger = begin(run_dir, cfg, info, wipe=plan.wipe, step=state.step,
                   write_side_files=side_files)
    if rng is not None:
        restore_rng(rng)
    Engine(state, cfg, info, run_dir, logger).run(
        chain_job(cfg, model, frozen, tok, chains, device, run_dir))
    if export_hf and isinstance(model, HFClipModel):
        save_hf(model, run_dir / "hf")
    for n, p in model.named_parameters():
        p.requires_grad_(flags[n])
    return run_dir


__all__ = [
    "FrozenText",
    "finetune",
    "finetune_loss",
    "freeze_all_but_text",
    "load_chains",
    "merged_config",
    "trainable_names",
]
