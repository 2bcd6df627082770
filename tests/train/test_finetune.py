"""Radial Embedding / entailment-cone fine-tuning: loss wiring, frozen parameters, root (the
``clipspace finetune`` command is tested in tests/cli/test_finetune.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")

from tests.helpers.finetune import CHAINS, ft_config, write_train_csv  # noqa: E402


def _xi(r: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exterior angle at x of triangle r-x-y, computed directly (float64)."""
    a, b = x - r, y - x
    return torch.acos((a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)))


def test_step_loss_matches_direct_recomputation(finetune_hf_clip: Path) -> None:
    import transformers

    from clipspace.losses.radial import radial_loss
    from clipspace.models.hf_clip import load_pretrained
    from clipspace.train.finetune import FrozenText, finetune_loss

    model, tok, _ = load_pretrained(finetune_hf_clip)
    frozen = FrozenText(model)
    with torch.no_grad():  # move the trainable model away from the frozen copy
        for p in model.text_proj.parameters():
            p.add_(0.05 * torch.randn_like(p))
    cfg = ft_config("re", **{"finetune.lambda_p": 3.0, "finetune.lambda_m": 0.5})
    out = finetune_loss(model, frozen, tok, CHAINS, cfg)

    # the original weights
    ref = transformers.CLIPModel.from_pretrained(str(finetune_hf_clip)).eval()
    with torch.no_grad():
        emb = {}
        for ch in CHAINS:
            for t in (*ch.positive, *ch.negative, ""):
                emb[t] = model.encode_text(tok([t]))[0].double()
        orig = {t: F.normalize(ref.get_text_features(input_ids=tok([t])).pooler_output[0], dim=-1)
                .double() for t in emb}
    r = emb[""]
    pos = torch.stack([torch.stack([emb[t] for t in ch.positive]) for ch in CHAINS])
    neg = torch.stack([torch.stack([emb[t] for t in ch.negative]) for ch in CHAINS])
    xi_p = _xi(r, pos[:, :3], pos[:, 1:])  # (B, 3): Xi_r(p_k, p_k+1)
    xi_n = _xi(r, pos[:, :3], neg[:, :3])  # Xi_r(p_k, n_k), n_4 unused
    loss_e = xi_p.mean() - xi_n.mean()
    d = (xi_p - xi_n).reshape(-1)
    loss_m = d[xi_p.reshape(-1).argmax()] + d[xi_n.reshape(-1).argmin()]
    texts = [t for ch in CHAINS for t in (*ch.positive, *ch.negative)]
    cos = torch.stack([(emb[t] * orig[t]).sum() for t in texts])
    loss_p = (1 - cos.mean()) / 2
    assert loss_p.item() > 1e-4  # the perturbation is visible
    assert out["loss_e"].item() == pytest.approx(loss_e.item(), abs=1e-5)
    assert out["loss_m"].item() == pytest.approx(loss_m.item(), abs=1e-5)
    assert out["loss_p"].item() == pytest.approx(loss_p.item(), abs=1e-5)
    total = 3.0 * loss_p + 1.0 * loss_e + 0.5 * loss_m
    assert out["loss"].item() == pytest.approx(total.item(), abs=1e-5)
    # and it is exactly radial_loss on the embeddings the step computes
    direct = radial_loss(r.float(), pos.float(), neg.float(),
                         torch.stack([emb[t] for t in texts]).float(),
                         torch.stack([orig[t] for t in texts]).float(),
                         lambda_p=3.0, lambda_e=1.0, lambda_m=0.5)
    assert out["loss"].item() == pytest.approx(direct["loss"].item(), abs=1e-5)
    # gradients reach the root's path: the loss depends on the "" embedding
    out["loss"].backward()
    assert model.text_proj.weight.grad is not None
    assert model.text_proj.weight.grad.abs().sum() > 0


def test_ec_method_uses_cone_loss(finetune_hf_clip: Path) -> None:
    from clipspace.models.hf_clip import load_pretrained
    from clipspace.train.finetune import FrozenText, finetune_loss

    model, tok, _ = load_pretrained(finetune_hf_clip)
    out = finetune_loss(model, FrozenText(model), tok, CHAINS, ft_config("ec"))
    assert {"loss_pos", "loss_neg", "loss_p"} <= set(out)
    assert out["loss_p"].item() == pytest.approx(0.0, abs=1e-6)  # untouched model
    assert out["loss"].item() == pytest.approx(
        (out["loss_pos"] + out["loss_neg"]).item(), abs=1e-6)


def test_only_text_parameters_change_and_root_moves(finetune_hf_clip: Path, tmp_path: Path) -> None:
    from clipspace.models import create_model
    from clipspace.models.hf_clip import get_hf_tokenizer
    from clipspace.train.finetune import finetune

    before = create_model(pretrained=str(finetune_hf_clip)).eval()
    cfg = ft_config("re", **{"run.output_dir": str(tmp_path), "run.name": "ft"})
    train_csv = write_train_csv(tmp_path / "train.csv")
    run_dir = finetune(finetune_hf_clip, cfg, f"hierarcaps:{train_csv}", steps=3)
    after = create_model(pretrained=str(run_dir)).eval()
    sb, sa = before.state_dict(), after.state_dict()
    assert sb.keys() == sa.keys()
    changed = [k for k in sb if not torch.equal(sb[k], sa[k])]
    assert changed, "nothing trained"
    assert all(k.startswith(("text.", "text_proj.")) for k in changed), changed
    assert any(k.startswith("text_proj.") for k in changed)
    assert any(k.startswith("text.") for k in changed)
    tok = get_hf_tokenizer(finetune_hf_clip)
    with torch.no_grad():
        r0, r1 = before.encode_text(tok([""])), after.encode_text(tok([""]))
    assert not torch.allclose(r0, r1, atol=1e-6)  # the root moved with the text tower
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert all(math.isfinite(m["loss"]) and "loss_p" in m for m in metrics)
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["finetune"]["method"] == "re" and saved["optim"]["steps"] == 3


def test_clipspace_model_object_only_text_changes(tmp_path: Path) -> None:
    from clipspace.data.tokenizer import train_tokenizer
    from clipspace.models import create_model
    from clipspace.train.finetune import finetune

    texts = [c for ch in CHAINS for c in (*ch.positive, *ch.negative)]
    tok = train_tokenizer(texts, vocab_size=300, context_length=16)
    model = create_model(
        "clip", **{"model.name": "custom", "model.embed_dim": 16, "model.text.width": 16,
                   "model.text.heads": 2, "model.text.depth": 1, "model.text.vocab_size": 300,
                   "model.image.width": 8, "model.image.depth": 1},
        eot_id=tok.eot_id, pad_id=tok.pad_id,
    ).eval()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    cfg = ft_config("re", **{"run.output_dir": str(tmp_path), "run.name": "own"})
    run_dir = finetune(model, cfg, f"hierarcaps:{write_train_csv(tmp_path / 't.csv')}",
                       steps=2, tokenizer=tok)
    end = model.state_dict()
    changed = [k for k in start if not torch.equal(start[k], end[k])]
    assert changed and all(k.startswith(("text.", "text_proj.")) for k in changed), changed
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    reloaded = create_model(pretrained=str(run_dir))
    assert all(torch.equal(reloaded.state_dict()[k], end[k]) for k in end)


def test_load_chains_rejects_bad_specs(tmp_path: Path) -> None:
    from clipspace.errors import ClipspaceError
    from clipspace.train.finetune import load_chains

    with pytest.raises(ClipspaceError, match="hierarcaps:TRAIN_CSV or mad:DIR"):
        load_chains("no-scheme")
    with pytest.raises(ClipspaceError, match="not supported"):
        load_chains(f"wds:{tmp_path}/x.tar")
    chains = load_chains(f"hierarcaps:{write_train_csv(tmp_path / 'c.csv')}")
    assert len(chains) == 3 * len(CHAINS)
    assert chains[0].positive == CHAINS[0].positive
    assert np.all([len(c.negative) == 4 for c in chains])


