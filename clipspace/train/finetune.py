"""Text-tower fine-tuning of a pretrained CLIP: Radial Embedding (RE) and the entailment-cone (EC)
baseline (REFERENCE.md section 3; Alper & Averbuch-Elor, "Emergent Visual-Semantic Hierarchies
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
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from clipspace import config as C
from clipspace.config import Config, ConfigError
from clipspace.data.chains import Chain
from clipspace.errors import ClipspaceError, DataError
from clipspace.losses.radial import entailment_cone_finetune_loss, radial_loss
from clipspace.train import checkpoint as ckpt
from clipspace.train.distributed import DistInfo
from clipspace.train.logger import MetricsLogger
from clipspace.train.optim import WarmupCosine, build_optimizer, clip_gradients

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
        from clipspace.data.hierarcaps import read_hierarcaps_train

        return read_hierarcaps_train(path)
    if kind == "mad":
        from clipspace.data.chains import mad_chains

        return mad_chains(path, split="train", seed=seed)
    raise DataError(f"fine-tuning data {data!r}: scheme {kind!r} not supported (hierarcaps, mad)")


def find_tokenizer(path: str | Path) -> Path | None:
    """tokenizer.json in ``path`` (or its directory) or up to three parents (run / step dirs)."""
    p = Path(path)
    start = p if p.is_dir() else p.parent
    for d in [start, *list(start.parents)[:3]]:
        if (d / "tokenizer.json").is_file():
            return d / "tokenizer.json"
    return None


def load_model_and_tokenizer(source: str | Path) -> tuple[nn.Module, Tokenizer]:
    """A clipspace run / checkpoint or an HF CLIP directory, with its tokenizer."""
    from clipspace.models import create_model
    from clipspace.models.hf_clip import find_hf_base

    src = Path(source).expanduser()
    if not src.exists():
        raise ClipspaceError(f"--model {src}: no such run, checkpoint or Hugging Face directory")
    model = create_model(pretrained=str(src))
    tok = getattr(model, "tokenizer", None)
    if tok is None and find_hf_base(src) is not None:
        from clipspace.models.hf_clip import get_hf_tokenizer

        tok = get_hf_tokenizer(src, model.context_length)
    if tok is None:
        path = find_tokenizer(src)
        if path is None:
            raise ClipspaceError(f"--model {src}: no tokenizer.json next to the checkpoint")
        from clipspace.data.tokenizer import get_tokenizer

        tok = get_tokenizer(path, context_length=model.context_length)
    return model, tok


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


def _write_side_files(run_dir: Path, model: nn.Module, tokenizer: Any, source: str) -> None:
    """config.json is written by the caller; here: tokenizer.json and, for HF models, hf_base."""
    from clipspace.models.hf_clip import HFClipModel, copy_side_files, find_hf_base

    if isinstance(model, HFClipModel):
        base = find_hf_base(source) if source else None
        base = base or (Path(model.source) if model.source else None)
        if base is None:
            raise ClipspaceError("fine-tuning an HF model object needs its source directory")
        if base.resolve() != (run_dir / "hf_base").resolve():
            copy_side_files(base, run_dir / "hf_base")
        if (base / "tokenizer.json").is_file():
            shutil.copy2(base / "tokenizer.json", run_dir / "tokenizer.json")
    elif hasattr(tokenizer, "save"):
        tokenizer.save(run_dir / "tokenizer.json")


# ---- the loop -----------------------------------------------------------------------------------


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
    source = ""
    if isinstance(model_dir_or_model, nn.Module):
        model = model_dir_or_model
        source = str(getattr(model, "source", "") or "")
        tok = tokenizer or getattr(model, "tokenizer", None)
        if tok is None:
            raise ClipspaceError("finetune(model object, ...) needs tokenizer=")
    else:
        source = str(model_dir_or_model)
        model, tok = load_model_and_tokenizer(source)
        tok = tokenizer or tok
    cfg = merged_config(model, config)
    cfg.data.train = data
    from clipspace.train.loop import autocast_factory, pick_device, prepare_run_dir, wipe_run_dir

    device = pick_device(cfg)
    autocast = autocast_factory(cfg, device)
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    chains = load_chains(data, cfg.run.seed)
    batch = cfg.data.batch_size
    per_epoch = math.ceil(len(chains) / batch)
    total = int(steps) if steps > 0 else per_epoch * cfg.finetune.epochs
    cfg.optim.steps = total
    if resume == "latest" and not cfg.run.name:
        raise ConfigError("--resume latest needs a run name (config key 'run.name' / --name)")
    if not cfg.run.name:
        cfg.run.name = f"finetune-{cfg.finetune.method}-{time.strftime('%Y%m%d-%H%M%S')}"
    info1 = DistInfo()  # fine-tuning runs in one process
    run_dir, checkpoint = prepare_run_dir(cfg, resume, overwrite, info1)

    ckpt.seed_everything(cfg.run.seed)
    model = model.to(device).eval()
    frozen = FrozenText(model).to(device)  # the original weights, also when resuming
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    params = freeze_all_but_text(model)
    optimizer = build_optimizer(model, cfg.optim)
    schedule = WarmupCosine(optimizer, cfg.optim)

    step = 0
    rng_state = None
    if checkpoint is not None:
        state = ckpt.load_checkpoint(checkpoint, model)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        step = int(state["step"])
        rng_state = state.get("rng")

    if overwrite and checkpoint is None:
        wipe_run_dir(run_dir, info1)  # only now: every input above has been checked
    run_dir.mkdir(parents=True, exist_ok=True)
    C.save(cfg, run_dir / "config.json")
    _write_side_files(run_dir, model, tok, source)
    from clipspace.io import atomic_write_text

    info = {"source": source, "data": data, "method": cfg.finetune.method,
            "chains": len(chains), "steps": total, "steps_per_epoch": per_epoch,
            "trainable": trainable_names(model)[:4] + ["..."]}
    atomic_write_text(run_dir / INFO_NAME, json.dumps(info, indent=2) + "\n")
    logger = MetricsLogger(run_dir, tensorboard=cfg.run.tensorboard)
    logger.truncate_after(step)
    if rng_state is not None:
        ckpt.restore_rng(rng_state)

    def save(at: int) -> None:
        logger.flush()
        state = {"optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(),
                 "epoch": at // per_epoch, "consumed": at % per_epoch, "world_size": 1}
        ckpt.save_checkpoint(run_dir, at, model, state, keep_last=cfg.run.keep_last)

    bar = None
    if cfg.run.progress and step < total:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=step, desc=f"finetune {run_dir.name}", unit="step")
    order: np.ndarray | None = None
    order_epoch = -1
    while step < total:
        epoch, pos = divmod(step, per_epoch)
        if epoch != order_epoch:
            order = np.random.default_rng([cfg.run.seed, epoch]).permutation(len(chains))
            order_epoch = epoch
        assert order is not None
        picked = [chains[i] for i in order[pos * batch : (pos + 1) * batch]]
        with autocast():
            out = finetune_loss(model, frozen, tok, picked, cfg, device)
        out["loss"].backward()
        grad_norm = clip_gradients(params, cfg.optim.grad_clip)
        lr = schedule.apply()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        step += 1
        metrics = {k: float(v.detach()) for k, v in out.items()}
        if not math.isfinite(metrics["loss"]):
            raise FloatingPointError(f"non-finite fine-tuning loss at step {step}")
        metrics.update(lr=lr, grad_norm=grad_norm, epoch=epoch)
        logger.log(step, metrics)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
        if cfg.run.log_every > 0 and step % cfg.run.log_every == 0:
            logger.flush()
        if cfg.run.save_every > 0 and step % cfg.run.save_every == 0 and step < total:
            save(step)
    if bar is not None:
        bar.close()
    save(step)
    logger.close()
    if export_hf:
        from clipspace.models.hf_clip import HFClipModel, save_hf

        if isinstance(model, HFClipModel):
            save_hf(model, run_dir / "hf")
    for n, p in model.named_parameters():
        p.requires_grad_(flags[n])
    return run_dir


def evaluate_model(
    model: nn.Module,
    tokenizer: Tokenizer,
    data: str,
    image_dir: str | None = None,
    suites: Sequence[str] = ("retrieval", "hierarchy"),
    split: str = "test",
    max_samples: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """``clipspace.eval.evaluate`` of ``model``; a ``hierarcaps:CSV[::IMAGES]`` spec uses the
    model's own ``preprocess`` (HF checkpoints) when it has one."""
    from clipspace.eval import evaluate

    dataset: Any = data
    kind, _, path = data.partition(":")
    if kind == "hierarcaps" and getattr(model, "preprocess", None) is not None:
        from clipspace.data.hierarcaps import HierarCapsImages

        if "::" in path and image_dir is None:
            path, image_dir = path.split("::", 1)
        dataset = HierarCapsImages(path, image_dir, transform=model.preprocess)
    out = evaluate(model, dataset, suites=list(suites), tokenizer=tokenizer, split=split,
                   max_samples=max_samples, device=device, progress=progress,
                   image_dir=image_dir)
    out["data"] = data
    return out


__all__ = [
    "FrozenText",
    "evaluate_model",
    "finetune",
    "finetune_loss",
    "find_tokenizer",
    "freeze_all_but_text",
    "load_chains",
    "load_model_and_tokenizer",
    "merged_config",
    "trainable_names",
]
