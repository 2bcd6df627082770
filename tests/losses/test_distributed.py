"""3-process gloo run == one process on the same global batch (loss and gradients).

Convention (see clipspace.losses.distributed): with gather_with_grad, each rank's gradient for
its local features is world_size x the single-process gradient of the global-batch loss, and
the logit-scale gradient averaged over ranks equals the single-process one, so DDP's gradient
averaging reproduces single-process training. Without gather_with_grad (local_loss=False) the
local-feature gradient equals the single-process one (DDP then yields 1/world_size of it).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clipspace.losses import Objective, gather_features, rank_labels

WORLD = 3  # three ranks: the ring exchange passes every text block on twice
B_LOCAL = 3
D = 5

CONFIGS: list[dict] = [
    {"geometry": "sphere", "contrastive": "infonce", "logit": "cosine"},
    {"geometry": "sphere", "contrastive": "infonce", "logit": "cosine", "local_loss": True},
    {"geometry": "lorentz", "contrastive": "infonce", "logit": "neg_dist", "local_loss": True,
     "entail_weight": 0.2},
    {"geometry": "euclidean", "contrastive": "siglip", "logit": "neg_sqdist", "local_loss": True},
    {"geometry": "euclidean", "contrastive": "angle", "local_loss": True},
    {"geometry": "euclidean", "contrastive": "angle"},
    {"geometry": "sphere", "contrastive": "infonce", "logit": "cosine",
     "gather_with_grad": False},
    {"geometry": "sphere", "contrastive": "siglip", "logit": "cosine", "siglip_exchange": "ring"},
    {"geometry": "lorentz", "contrastive": "siglip", "logit": "neg_dist",
     "siglip_exchange": "ring", "chunk_size": 2},
]


def _is_local(cfg: dict) -> bool:
    """Each rank's loss is its share of the global one (the ring exchange always is)."""
    return cfg.get("local_loss", False) or cfg.get("siglip_exchange") == "ring"


def _global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return (0.6 * torch.randn(WORLD * B_LOCAL, D, generator=g, dtype=torch.float64),
            0.6 * torch.randn(WORLD * B_LOCAL, D, generator=g, dtype=torch.float64))


def _run(obj: Objective, img: torch.Tensor, txt: torch.Tensor) -> dict[str, torch.Tensor]:
    img = img.clone().requires_grad_(True)
    txt = txt.clone().requires_grad_(True)
    out = obj(img, txt, 1.0)
    out["loss"].backward()
    bias = obj.siglip_bias.grad.clone() if obj.siglip_bias is not None else torch.zeros(())
    return {"loss": out["loss"].detach(), "img": img.grad, "txt": txt.grad,
            "scale": obj.logit_scale.log_value.grad.clone(), "bias": bias}


def _parts() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two boxes per scene of the global batch: box image / text features and box_scene."""
    g = torch.Generator().manual_seed(8)
    n = 2 * WORLD * B_LOCAL
    return (0.6 * torch.randn(n, D, generator=g, dtype=torch.float64),
            0.6 * torch.randn(n, D, generator=g, dtype=torch.float64),
            torch.arange(WORLD * B_LOCAL).repeat_interleave(2))


def _run_parts(obj: Objective, img: torch.Tensor, txt: torch.Tensor, box_img: torch.Tensor,
               box_txt: torch.Tensor, box_scene: torch.Tensor) -> dict[str, torch.Tensor]:
    leaves = [x.clone().requires_grad_(True) for x in (img, txt, box_img, box_txt)]
    out = obj(leaves[0], leaves[1], 1.0, (leaves[2], leaves[3], box_scene))
    out["loss"].backward()
    return {"loss": out["loss"].detach(), "grads": [x.grad for x in leaves],
            "scale": obj.logit_scale.log_value.grad.clone()}


def _worker(rank: int, port: int, outdir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD)
    try:
        img, txt = _global_batch()
        sl = slice(rank * B_LOCAL, (rank + 1) * B_LOCAL)
        results = []
        for cfg in CONFIGS:
            obj = Objective(**cfg, logit_scale=3.0).double()
            results.append(_run(obj, img[sl], txt[sl]))
        parts = _parts()
        box = torch.nonzero(parts[2] // B_LOCAL == rank)[:, 0]  # this rank's scenes' boxes
        obj = Objective("lorentz", logit="neg_dist", logit_scale=3.0, entail_weight=0.2,
                        compositional=True, uncertainty=True, calibration_weight=0.0).double()
        extra_comp = _run_parts(obj, img[sl], txt[sl], parts[0][box], parts[1][box],
                                parts[2][box] - rank * B_LOCAL)
        a, t = gather_features(img[sl], txt[sl])
        extra = {"gathered": a, "labels_local": rank_labels(B_LOCAL, True),
                 "labels_all": rank_labels(B_LOCAL, False), "compositional": extra_comp}
        torch.save({"results": results, **extra}, os.path.join(outdir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    if not dist.is_available():
        pytest.skip("torch.distributed not available")
    out: Path = tmp_path_factory.mktemp("dist")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def test_compositional_matches_single_process(ranks: list[dict]) -> None:
    """HyCoCLIP's objective with UNCHA's row weights, two boxes per scene: the rank losses
    average to the global one, and every local feature (wholes and boxes) gets world_size x the
    one-process gradient, as everywhere in losses.distributed (boxes are not gathered: only
    their own rank's loss sees them). UNCHA's calibration is left out: its entropy over the
    batch's parts is computed per rank, as UNCHA's code does on each GPU."""
    img, txt = _global_batch()
    parts = _parts()
    obj = Objective("lorentz", logit="neg_dist", logit_scale=3.0, entail_weight=0.2,
                    compositional=True, uncertainty=True, calibration_weight=0.0).double()
    single = _run_parts(obj, img, txt, *parts)
    per_rank = [r["compositional"] for r in ranks]
    torch.testing.assert_close(torch.stack([p["loss"] for p in per_rank]).mean(), single["loss"])
    for r, p in enumerate(per_rank):
        sl = slice(r * B_LOCAL, (r + 1) * B_LOCAL)
        box = torch.nonzero(parts[2] // B_LOCAL == r)[:, 0]
        torch.testing.assert_close(p["grads"][0], WORLD * single["grads"][0][sl])
        torch.testing.assert_close(p["grads"][1], WORLD * single["grads"][1][sl])
        torch.testing.assert_close(p["grads"][2], WORLD * single["grads"][2][box])
        torch.testing.assert_close(p["grads"][3], WORLD * single["grads"][3][box])
    scale = torch.stack([p["scale"] for p in per_rank]).mean()
    torch.testing.assert_close(scale, single["scale"])


def test_gather_and_labels(ranks: list[dict]) -> None:
    img, _ = _global_batch()
    for r, res in enumerate(ranks):
        torch.testing.assert_close(res["gathered"], img)
        assert res["labels_local"].tolist() == list(range(r * B_LOCAL, (r + 1) * B_LOCAL))
        assert res["labels_all"].tolist() == list(range(WORLD * B_LOCAL))


@pytest.mark.parametrize("i", range(len(CONFIGS)), ids=[str(c) for c in CONFIGS])
def test_matches_single_process(ranks: list[dict], i: int) -> None:
    cfg = CONFIGS[i]
    img, txt = _global_batch()
    single = _run(Objective(**cfg, logit_scale=3.0).double(), img, txt)
    per_rank = [res["results"][i] for res in ranks]
    # the global loss is the mean of the rank losses (equal to each one without local_loss)
    loss = torch.stack([p["loss"] for p in per_rank]).mean()
    torch.testing.assert_close(loss, single["loss"])
    if not _is_local(cfg):
        for p in per_rank:
            torch.testing.assert_close(p["loss"], single["loss"])
    factor = WORLD if cfg.get("gather_with_grad", True) else 1
    for r, p in enumerate(per_rank):
        sl = slice(r * B_LOCAL, (r + 1) * B_LOCAL)
        torch.testing.assert_close(p["img"], factor * single["img"][sl])
        torch.testing.assert_close(p["txt"], factor * single["txt"][sl])
    for key in ("scale", "bias"):  # 0-dim parameters: DDP averages their gradients
        torch.testing.assert_close(torch.stack([p[key] for p in per_rank]).mean(), single[key])
