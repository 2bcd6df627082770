"""run.analysis_every: dyn/<key> = dynamics_stats of a fixed subset, logged at step 0, every N
steps and at the end, equal to a direct computation, without changing the training itself."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from clipspace.analysis.entropy import dynamics_stats
from clipspace.data.build import build_dataset, resolve_tokenizer
from clipspace.models import create_model
from clipspace.train import train
from clipspace.train.hooks import AnalysisHook, analysis_pairs
from clipspace.train.logger import read_metrics
from tests.helpers.configs import tiny_config

KEYS = ("l2m", "rmg", "entropy", "entropy_rel", "alignment", "uniformity")


def dyn_rows(run: Path) -> dict[int, dict]:
    rows: dict[int, dict] = {}
    for r in read_metrics(run):
        if "dyn/l2m" in r:
            assert r["step"] not in rows, f"step {r['step']} logged twice"
            rows[r["step"]] = r
    return rows


def final_weights(run: Path, steps: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step_{steps}" / "model.safetensors"))


@pytest.fixture(scope="module")
def runs(tiny_mad: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("analysis")
    common = {"optim.steps": 7, "run.analysis_samples": 40, "data.val": f"mad:{tiny_mad}"}
    return {
        "every3": train(tiny_config("clip", tiny_mad, out, "every3", **common,
                                    **{"run.analysis_every": 3})),
        "plain": train(tiny_config("clip", tiny_mad, out, "plain", **common)),
    }


def test_logged_at_step_zero_every_n_and_at_the_end(runs: dict[str, Path]) -> None:
    rows = dyn_rows(runs["every3"])
    assert sorted(rows) == [0, 3, 6, 7]
    for r in rows.values():
        assert all(math.isfinite(r[f"dyn/{k}"]) for k in KEYS)
        assert 0 <= r["dyn/l2m"] <= 2 and 0 <= r["dyn/rmg"] <= 1
        assert 0 <= r["dyn/entropy"] <= math.log(40) + 1e-6
    assert rows[0]["dyn/l2m"] != rows[7]["dyn/l2m"]  # the model moved
    assert dyn_rows(runs["plain"]) == {}  # off by default


def test_analysis_does_not_change_training(runs: dict[str, Path]) -> None:
    a, b = final_weights(runs["every3"], 7), final_weights(runs["plain"], 7)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_logged_values_equal_a_direct_computation(runs: dict[str, Path], tiny_mad: Path) -> None:
    run = runs["every3"]
    model = create_model(pretrained=str(run / "checkpoints" / "step_7"))
    model.eval()
    cfg = model.config
    tok = resolve_tokenizer(cfg.data, model.context_length)
    val = build_dataset(cfg.data.val, cfg.data, "val")
    pairs = analysis_pairs(val, tok, 40)
    assert sum(len(x) for x, _ in pairs) == 40
    with torch.no_grad():
        img = torch.cat([model.encode_image(x) for x, _ in pairs])
        txt = torch.cat([model.encode_text(t) for _, t in pairs])
        direct = dynamics_stats(img, txt, model.logits(img, txt))
    logged = dyn_rows(run)[7]
    for key, value in direct.items():
        assert logged[f"dyn/{key}"] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_hook_is_due_once_per_step() -> None:
    pairs = [(torch.zeros(2, 3, 28, 28), torch.zeros(2, 4, dtype=torch.long))]
    hook = AnalysisHook(pairs, torch.device("cpu"), every=5, last_step=12)
    assert [s for s in range(14) if hook.due(s)] == [0, 5, 10, 12]
    hook.logged.add(5)
    assert not hook.due(5)
    with pytest.raises(ValueError, match="2 pairs"):
        AnalysisHook([(torch.zeros(1, 3, 28, 28), torch.zeros(1, 4))], torch.device("cpu"), 1, 1)


def test_analysis_uses_training_data_without_validation(tiny_mad: Path, tmp_path: Path) -> None:
    run = train(tiny_config("clip", tiny_mad, tmp_path, **{
        "optim.steps": 2, "run.analysis_every": 1, "run.analysis_samples": 16}))
    rows = dyn_rows(run)
    assert sorted(rows) == [0, 1, 2]
    assert rows[0]["dyn/entropy"] <= math.log(16) + 1e-6  # 16 pairs -> at most log 16


def _crash_at(step: int):
    def hook(model, at, run_dir):
        if at == step:
            raise RuntimeError(f"simulated crash at step {at}")
        return {}

    return hook


def test_resume_does_not_log_a_step_twice(tiny_mad: Path, tmp_path: Path) -> None:
    cfg = tiny_config("clip", tiny_mad, tmp_path, "r", **{
        "optim.steps": 6, "run.analysis_every": 2, "run.analysis_samples": 16,
        "run.save_every": 2, "run.eval_every": 1})
    with pytest.raises(RuntimeError, match="simulated"):
        train(cfg, hooks=[_crash_at(5)])  # last checkpoint: step 4, analysed before the crash
    run = train(cfg, resume="latest", hooks=[_crash_at(-1)])
    assert sorted(dyn_rows(run)) == [0, 2, 4, 6]  # dyn_rows fails on a step logged twice


def test_analysis_time_is_not_counted_in_samples_per_s(tiny_mad: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake clock: every reading advances 1 ms; each analysis pass advances it 1000 s. The
    steps right after an analysis must still show the step's own rate, not batch / 1000 s."""
    clock = [0.0]

    def now() -> float:
        clock[0] += 1e-3
        return clock[0]

    measure = AnalysisHook.measure

    def slow_measure(self, model):
        clock[0] += 1000.0
        return measure(self, model)

    monkeypatch.setattr("clipspace.train.engine.time.perf_counter", now)
    monkeypatch.setattr(AnalysisHook, "measure", slow_measure)
    cfg = tiny_config("clip", tiny_mad, tmp_path, **{"optim.steps": 4, "run.analysis_every": 2,
                                                     "run.analysis_samples": 20})
    rows = [r for r in read_metrics(train(cfg)) if "samples_per_s" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and clock[0] > 2000
    assert min(r["samples_per_s"] for r in rows) > cfg.data.batch_size  # < 1 s per step
