"""Training-step throughput and peak memory per preset, and the open_clip comparison.

Usage: ``python benchmarks/train.py [--model mad-vit] [--batch 256] [--rounds 5] [--threads 2]
[--presets clip,euclip,meru,atmg] [--compare] [--compile] [--grad-checkpointing]
[--device cpu|cuda]``

One step = forward + backward + gradient clipping + AdamW update, fp32 on CPU (bf16 autocast on
CUDA), synthetic data (random images, random token sequences ending in EOT). The presets are
timed interleaved (one step of each per round) so that load from other processes hits all of
them alike; the figure is the median over rounds. Peak memory: CUDA max_memory_allocated, or on
CPU the peak RSS above the resident set of a fresh subprocess, over two steps after a warm-up
step (``--memory``; Linux).
``--compare`` also times clip on ``mad-vit`` and ``mad-vit-256`` against open_clip 3.3.0's
measured 644 ms and 3374 ms per step (same towers, batch 256, fp32, 2 threads, AdamW), and,
interleaved on this machine, against an open_clip-style model written here
(``benchmarks/openclip_reference.py``; open_clip itself cannot be imported next to the CPU torch
build). The same-machine ratio is the machine-independent figure.
``--compile`` times each preset eager and under ``torch.compile`` (the ``run.compile`` path),
interleaved, and reports the first (compiling) step separately. ``--grad-checkpointing`` measures
peak memory and step time with ``model.grad_checkpointing`` on against off for each preset.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from clipspace.config import resolve
from clipspace.models import create_model
from clipspace.train.optim import WarmupCosine, build_optimizer, clip_gradients

OPEN_CLIP_MS = {"mad-vit": 644.0, "mad-vit-256": 3374.0}


def synthetic_batch(model, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    size = model.image_size
    images = torch.randn(batch, 3, size, size, generator=g)
    length = model.context_length
    vocab = 1000
    tokens = torch.randint(3, vocab, (batch, length), generator=g)
    ends = torch.randint(3, length, (batch,), generator=g)
    pos = torch.arange(length).expand(batch, length)
    tokens[:, 0] = 1
    tokens = torch.where(pos == ends[:, None], torch.full_like(tokens, 2), tokens)
    tokens = torch.where(pos > ends[:, None], torch.zeros_like(tokens), tokens)
    return images.to(device), tokens.to(device)


class _TimedStepper:
    """Times ``_run()`` (one training step) per call; subclasses build model, optimizer, batch."""

    device: torch.device
    times: list[float]

    def autocast(self):  # bf16 on CUDA for clipspace and the reference alike
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _run(self) -> None:
        raise NotImplementedError

    def step(self) -> float:
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        self._run()
        sync()
        dt = time.perf_counter() - t0
        self.times.append(dt)
        return dt


class ReferenceStepper(_TimedStepper):
    """The open_clip-style baseline: forward, backward, AdamW step (no clipping, fixed lr)."""

    def __init__(self, model_name: str, batch: int, device: torch.device) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from openclip_reference import REFERENCE_CONFIGS, ReferenceClip, reference_optimizer

        torch.manual_seed(0)
        self.model = ReferenceClip(**REFERENCE_CONFIGS[model_name]).to(device).train()
        self.opt = reference_optimizer(self.model)
        self.images, tokens = synthetic_batch(self.model, batch, device)
        # open_clip pools at argmax(token id): make the end token the largest id in each row
        self.tokens = torch.where(tokens == 2, torch.full_like(tokens, 999), tokens.clamp(max=998))
        self.device = device
        self.times = []

    def _run(self) -> None:
        with self.autocast():
            loss = self.model(self.images, self.tokens)["loss"]
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


class Stepper(_TimedStepper):
    """One preset's model, optimizer and batch; ``step()`` runs and times one training step."""

    def __init__(self, preset: str, model_name: str, batch: int, device: torch.device,
                 overrides: dict | None = None, compile: bool = False) -> None:
        self.cfg = resolve(preset, {"model.name": model_name, "data.batch_size": batch,
                                    **(overrides or {})})
        torch.manual_seed(0)
        self.model = create_model(self.cfg).to(device).train()
        self.step_model = torch.compile(self.model) if compile else self.model
        self.opt = build_optimizer(self.model, self.cfg.optim)
        self.sched = WarmupCosine(self.opt, self.cfg.optim)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.images, self.tokens = synthetic_batch(self.model, batch, device)
        self.device = device
        self.times = []

    def _run(self) -> None:
        with self.autocast():
            out = self.step_model(self.images, self.tokens)
        out["loss"].backward()
        clip_gradients(self.params, 1.0)
        self.sched.apply()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.sched.step()


def time_steppers(steppers: dict[str, _TimedStepper], rounds: int) -> dict[str, float]:
    """One warm-up step each, then ``rounds`` rounds of one step each (interleaved, so load
    from other processes hits all alike); the median seconds per step of each."""
    for s in steppers.values():
        s.step()
        s.times.clear()
    for _ in range(rounds):
        for s in steppers.values():
            s.step()
    return {name: statistics.median(s.times) for name, s in steppers.items()}


def time_interleaved(
    presets: list[str], model: str, batch: int, rounds: int, device: torch.device
) -> dict[str, float]:
    return time_steppers({p: Stepper(p, model, batch, device) for p in presets}, rounds)


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field in KiB (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def peak_memory_mib(preset: str, model: str, batch: int, device: torch.device,
                    overrides: dict | None = None) -> float:
    """CUDA: max allocated during two steps. CPU: RSS high-water mark (reset after a warm-up
    step) minus the resident set before the two measured steps, in a fresh subprocess."""
    if device.type == "cuda":
        s = Stepper(preset, model, batch, device, overrides)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        s.step()
        s.step()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    code = (
        "import sys, torch; sys.argv=['x'];"
        f"torch.set_num_threads({torch.get_num_threads()});"
        "from benchmarks.train import Stepper, _status_kib;"
        f"s = Stepper({preset!r}, {model!r}, {batch}, torch.device('cpu'), {overrides!r});"
        "s.step(); open('/proc/self/clear_refs', 'w').write('5');"  # reset the RSS high-water mark
        "base = _status_kib('VmRSS'); s.step(); s.step();"
        "print(_status_kib('VmHWM') - base)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # ru_maxrss is KiB on Linux


def compile_table(presets: list[str], model: str, batch: int, rounds: int,
                  device: torch.device) -> dict[str, dict[str, float]]:
    """Per preset: eager and compiled ms/step (interleaved medians), the first compiled step
    (compilation included) and the speed-up eager / compiled."""
    print(f"\n# torch.compile of the training step ({model}, batch {batch}, {device})")
    print(f"{'preset':8s} {'eager ms':>9s} {'compiled':>9s} {'speed-up':>9s} {'1st step s':>11s}")
    rows = {}
    for p in presets:
        eager = Stepper(p, model, batch, device)
        compiled = Stepper(p, model, batch, device, compile=True)
        first = compiled.step()  # compiles
        compiled.times.clear()
        med = time_steppers({"eager": eager, "compiled": compiled}, rounds)
        rows[p] = {"eager_ms": 1e3 * med["eager"], "compiled_ms": 1e3 * med["compiled"],
                   "speedup": med["eager"] / med["compiled"], "first_step_s": first}
        print(f"{p:8s} {1e3 * med['eager']:9.1f} {1e3 * med['compiled']:9.1f} "
              f"{med['eager'] / med['compiled']:9.2f} {first:11.1f}")
    return rows


def checkpointing_table(presets: list[str], model: str, batch: int, rounds: int,
                        device: torch.device) -> dict[str, dict[str, float]]:
    """Per preset: peak MiB and ms/step without and with ``model.grad_checkpointing``."""
    on = {"model.grad_checkpointing": True}
    print(f"\n# activation checkpointing ({model}, batch {batch}, {device})")
    print(f"{'preset':8s} {'peak off':>9s} {'peak on':>9s} {'mem ratio':>10s} {'ms off':>8s} "
          f"{'ms on':>8s} {'time ratio':>11s}")
    rows = {}
    for p in presets:
        med = time_steppers({"off": Stepper(p, model, batch, device),
                             "on": Stepper(p, model, batch, device, on)}, rounds)
        off_mib = peak_memory_mib(p, model, batch, device)
        on_mib = peak_memory_mib(p, model, batch, device, on)
        rows[p] = {"peak_off_mib": off_mib, "peak_on_mib": on_mib,
                   "memory_ratio": on_mib / off_mib, "ms_off": 1e3 * med["off"],
                   "ms_on": 1e3 * med["on"], "time_ratio": med["on"] / med["off"]}
        print(f"{p:8s} {off_mib:9.1f} {on_mib:9.1f} {on_mib / off_mib:10.2f} "
              f"{1e3 * med['off']:8.1f} {1e3 * med['on']:8.1f} {med['on'] / med['off']:11.2f}")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="mad-vit")
    ap.add_argument("--presets", default="clip,euclip,meru,atmg")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--memory", action="store_true", help="also measure peak memory")
    ap.add_argument("--compare", action="store_true", help="open_clip comparison configs")
    ap.add_argument("--compile", action="store_true", help="eager vs torch.compile per preset")
    ap.add_argument("--grad-checkpointing", action="store_true",
                    help="peak memory and time with model.grad_checkpointing on vs off")
    ap.add_argument("--json", default="", help="write the results to this JSON file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    presets = [p for p in args.presets.split(",") if p]
    results: dict[str, object] = {"device": str(device), "threads": args.threads,
                                  "batch": args.batch, "model": args.model}

    med = time_interleaved(presets, args.model, args.batch, args.rounds, device)
    base = med.get("clip", next(iter(med.values())))
    print(f"# presets on {args.model}, batch {args.batch}, {device}, {args.threads} threads, "
          f"median of {args.rounds} interleaved rounds")
    print(f"{'preset':8s} {'ms/step':>9s} {'samples/s':>10s} {'time/clip':>10s} {'peak MiB':>9s}")
    rows = {}
    for p, t in med.items():
        mem = peak_memory_mib(p, args.model, args.batch, device) if args.memory else float("nan")
        rows[p] = {"ms": 1e3 * t, "samples_per_s": args.batch / t, "ratio": t / base,
                   "peak_mib": mem}
        print(f"{p:8s} {1e3 * t:9.1f} {args.batch / t:10.1f} {t / base:10.3f} {mem:9.1f}")
    results["presets"] = rows

    if args.compare:
        print(f"\n# clip vs open_clip 3.3.0's quoted figures and vs the open_clip-style reference "
              f"on this machine (batch {args.batch}, fp32, {args.threads} threads, interleaved)")
        print(f"{'model':12s} {'ms/step':>9s} {'open_clip':>10s} {'ratio':>7s} "
              f"{'reference ms':>13s} {'ratio':>7s}")
        comp = {}
        for name, ref in OPEN_CLIP_MS.items():
            med = time_steppers({"clip": Stepper("clip", name, args.batch, device),
                                 "reference": ReferenceStepper(name, args.batch, device)},
                                args.rounds)
            t, t_ref = med["clip"], med["reference"]
            comp[name] = {"ms": 1e3 * t, "open_clip_ms": ref, "ratio": 1e3 * t / ref,
                          "reference_ms": 1e3 * t_ref, "reference_ratio": t / t_ref}
            print(f"{name:12s} {1e3 * t:9.1f} {ref:10.1f} {1e3 * t / ref:7.3f} "
                  f"{1e3 * t_ref:13.1f} {t / t_ref:7.3f}")
        results["open_clip"] = comp
    if args.compile:
        results["compile"] = compile_table(presets, args.model, args.batch, args.rounds, device)
    if args.grad_checkpointing:
        results["grad_checkpointing"] = checkpointing_table(presets, args.model, args.batch,
                                                           args.rounds, device)
    load = resource.getrusage(resource.RUSAGE_SELF)
    results["cpu_user_s"] = load.ru_utime
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
