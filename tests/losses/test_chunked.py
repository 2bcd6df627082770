"""Chunked InfoNCE / SigLIP (clipspace.losses.chunked) == the unchunked losses, value and
gradients (points, logit scale, curvature), for every logit kind in every geometry and the ATMG
angle logits, with chunks that do and do not divide the batch; no B x N tensor is formed."""

from __future__ import annotations

import os
import socket
from functools import partial
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor

from clipspace.config import ConfigError, resolve
from clipspace.geometry import get_geometry
from clipspace.losses import (
    LOGIT_KINDS,
    Objective,
    angle_logits,
    chunked_cross_entropy,
    chunked_infonce,
    chunked_siglip,
    infonce,
    pairwise_logits,
    siglip,
)
from clipspace.models import create_model
from tests.helpers.configs import TINY

B = 37
D = 6
CHUNKS = (8, 37, 64)  # does not divide B, equals B, exceeds B
GEOMETRIES = ("sphere", "euclidean", "lorentz")
KINDS = [(geo, kind) for geo in GEOMETRIES for kind in LOGIT_KINDS]


def _points(geo: str, dtype: torch.dtype = torch.float32, n: int = B,
            seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    img = 0.7 * torch.randn(n, D, generator=g, dtype=dtype)
    txt = img + 0.5 * torch.randn(n, D, generator=g, dtype=dtype)  # correlated pairs
    if geo == "sphere":
        img, txt = img / img.norm(dim=-1, keepdim=True), txt / txt.norm(dim=-1, keepdim=True)
    return img, txt


def _scaled(kind: str, geo: ModuleType, rows: Tensor, cols: Tensor, s: Tensor,
            c: Tensor) -> Tensor:
    return s * pairwise_logits(kind, rows, cols, geo, c)


def _angle(geo: ModuleType, sign: float, rows: Tensor, cols: Tensor, s: Tensor,
           c: Tensor) -> Tensor:
    return sign * s * geo.pairwise_ext_angle(rows, cols, c)


def _grads(loss_fn, img: Tensor, txt: Tensor, dtype: torch.dtype = torch.float32,
           ) -> tuple[Tensor, list[Tensor]]:
    """loss and d loss / d (img, txt, logit scale, curvature)."""
    leaves = [img.clone().requires_grad_(True), txt.clone().requires_grad_(True),
              torch.tensor(7.0, dtype=dtype, requires_grad=True),
              torch.tensor(1.3, dtype=dtype, requires_grad=True)]
    loss = loss_fn(*leaves)
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return loss.detach(), [torch.zeros_like(x) if g is None else g
                           for x, g in zip(leaves, grads, strict=True)]


def _assert_same(a: tuple[Tensor, list[Tensor]], b: tuple[Tensor, list[Tensor]],
                 tol: float) -> None:
    torch.testing.assert_close(a[0], b[0], atol=tol, rtol=tol)
    for name, x, y in zip(("img", "txt", "scale", "curv"), a[1], b[1], strict=True):
        torch.testing.assert_close(x, y, atol=tol, rtol=tol, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize(("geo", "kind"), KINDS, ids=[f"{g}-{k}" for g, k in KINDS])
def test_infonce_and_siglip_match_unchunked(geo: str, kind: str, chunk: int) -> None:
    g = get_geometry(geo)
    img, txt = _points(geo)
    fn = partial(_scaled, kind, g)
    ref = _grads(lambda i, t, s, c: infonce(fn(i, t, s, c)), img, txt)
    got = _grads(lambda i, t, s, c: chunked_infonce(fn, i, t, chunk, params=(s, c)), img, txt)
    _assert_same(got, ref, 1e-5)
    assert ref[1][2].abs() > 1e-4  # the logit-scale gradient is compared, not two zeros
    if geo == "lorentz" and kind != "cosine" and kind != "dot":
        assert ref[1][3].abs() > 1e-4  # so is the curvature gradient
    bias = -3.0
    ref = _grads(lambda i, t, s, c: siglip(fn(i, t, s, c), bias), img, txt)
    got = _grads(lambda i, t, s, c: chunked_siglip(fn, i, t, bias, chunk, params=(s, c)),
                 img, txt)
    _assert_same(got, ref, 1e-5)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("geo", ["euclidean", "lorentz"])
def test_atmg_angle_logits_match_unchunked(geo: str, chunk: int) -> None:
    g = get_geometry(geo)
    img, txt = _points(geo)

    def ref_loss(i: Tensor, t: Tensor, s: Tensor, c: Tensor) -> Tensor:
        li, lt = angle_logits(i, t, g, c)
        return infonce(s * li, None, s * lt)

    def chunked(i: Tensor, t: Tensor, s: Tensor, c: Tensor) -> Tensor:
        return chunked_infonce(partial(_angle, g, 1.0), i, t, chunk, params=(s, c),
                               logit_fn_t=partial(_angle, g, -1.0), txt_rows=t, img_cols=i)

    ref, got = _grads(ref_loss, img, txt), _grads(chunked, img, txt)
    _assert_same(got, ref, 1e-5)
    assert ref[1][2].abs() > 1e-4


@pytest.mark.parametrize("chunk", [1, 3, 5, 7])
def test_float64_exact_labels_and_rectangular(chunk: int) -> None:
    """float64 to 1e-10: a permuted label set (square path) and local rows against gathered
    columns with offset labels (rectangular path), against the same logits unchunked."""
    g = get_geometry("lorentz")
    img, txt = _points("lorentz", torch.float64, n=7)
    fn = partial(_scaled, "neg_dist", g)
    perm = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    ref = _grads(lambda i, t, s, c: infonce(fn(i, t, s, c), perm), img, txt, torch.float64)
    got = _grads(lambda i, t, s, c: chunked_infonce(fn, i, t, chunk, perm, (s, c)), img, txt,
                 torch.float64)
    _assert_same(got, ref, 1e-10)
    rows = slice(2, 5)  # rank 1 of a world where each rank holds 3 rows of 7 (last one short)
    labels = torch.arange(2, 5)

    def ref_local(i: Tensor, t: Tensor, s: Tensor, c: Tensor) -> Tensor:
        return infonce(fn(i[rows], t, s, c), labels, fn(t[rows], i, s, c))

    def chunked_local(i: Tensor, t: Tensor, s: Tensor, c: Tensor) -> Tensor:
        return chunked_infonce(fn, i[rows], t, chunk, labels, (s, c), txt_rows=t[rows],
                               img_cols=i)

    _assert_same(_grads(chunked_local, img, txt, torch.float64),
                 _grads(ref_local, img, txt, torch.float64), 1e-10)
    ce = _grads(lambda i, t, s, c: chunked_cross_entropy(fn, i, t, chunk, perm, (s, c)),
                img, txt, torch.float64)
    ref_ce = _grads(lambda i, t, s, c: torch.nn.functional.cross_entropy(fn(i, t, s, c), perm),
                    img, txt, torch.float64)
    _assert_same(ce, ref_ce, 1e-10)


def test_never_forms_the_full_logit_matrix() -> None:
    """logit_fn sees at most ``chunk`` rows (forward and backward) and autograd saves no tensor
    with B x N elements."""
    g = get_geometry("lorentz")
    img, txt = _points("lorentz", n=40)
    seen: list[int] = []

    def fn(rows: Tensor, cols: Tensor, s: Tensor, c: Tensor) -> Tensor:
        seen.append(rows.shape[0])
        return s * pairwise_logits("neg_dist", rows, cols, g, c)

    saved: list[int] = []

    def pack(t: Tensor) -> Tensor:
        saved.append(t.numel())
        return t

    for rows_seen, loss_fn in (
        # square InfoNCE: logits once in the forward pass, once more in the backward pass
        (2 * 40, lambda i, t, s, c: chunked_infonce(fn, i, t, 8, params=(s, c))),
        # two separate matrices, each evaluated once with its gradients
        (2 * 40, lambda i, t, s, c: chunked_infonce(fn, i, t, 8, params=(s, c), txt_rows=t,
                                                    img_cols=i)),
        (40, lambda i, t, s, c: chunked_siglip(fn, i, t, -2.0, 8, params=(s, c))),
    ):
        seen.clear()
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            _grads(loss_fn, img, txt)
        assert seen and max(seen) <= 8
        assert sum(seen) == rows_seen
        assert max(saved) < 40 * 40 / 2, max(saved)


@pytest.mark.parametrize("geo", GEOMETRIES)
def test_bf16_autocast_finite_and_float32(geo: str) -> None:
    g = get_geometry(geo)
    img, txt = _points(geo)
    img, txt = img.bfloat16(), txt.bfloat16()
    fn = partial(_scaled, "neg_dist", g)
    ref = _grads(lambda i, t, s, c: infonce(fn(i, t, s, c)), img.float(), txt.float())
    for loss_fn in (lambda i, t, s, c: chunked_infonce(fn, i, t, 8, params=(s, c)),
                    lambda i, t, s, c: chunked_siglip(fn, i, t, -2.0, 8, params=(s, c))):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, grads = _grads(loss_fn, img, txt)
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        assert all(torch.isfinite(x).all() for x in grads)
        assert grads[0].dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _grads(lambda i, t, s, c: chunked_infonce(fn, i, t, 8, params=(s, c)), img, txt)
    torch.testing.assert_close(got[0], ref[0], atol=1e-5, rtol=1e-5)  # float32 inside


def test_no_grad_and_bad_arguments() -> None:
    fn = partial(_scaled, "cosine", get_geometry("sphere"))
    img, txt = _points("sphere")
    s, c = torch.tensor(5.0), torch.tensor(1.0)
    img.requires_grad_(True)
    with torch.no_grad():  # no gradient is taken, none is attached
        a = chunked_infonce(fn, img, txt, 8, params=(s, c))
        b = chunked_siglip(fn, img, txt, -1.0, 8, params=(s, c))
        e = chunked_infonce(fn, img, txt, 8, params=(s, c), txt_rows=txt, img_cols=img)
    assert not (a.requires_grad or b.requires_grad or e.requires_grad)
    torch.testing.assert_close(e, a)
    img = img.detach()
    torch.testing.assert_close(a, infonce(fn(img, txt, s, c)))
    torch.testing.assert_close(b, siglip(fn(img, txt, s, c), -1.0))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="chunk"):
            chunked_infonce(fn, img, txt, bad, params=(s, c))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="square"):
        chunked_infonce(fn, img, txt[:5], 8, params=(s, c))
    with pytest.raises(ValueError, match="labels"):
        chunked_siglip(fn, img, txt, -1.0, 8, torch.arange(3), (s, c))


# --- Objective and the config key ---------------------------------------------------------------

OBJECTIVES: list[tuple[str, dict]] = [
    *[(geo, {"logit": kind}) for geo, kind in KINDS],
    ("sphere", {"contrastive": "siglip", "logit": "cosine"}),
    ("lorentz", {"contrastive": "siglip", "logit": "neg_dist"}),
    ("euclidean", {"contrastive": "angle", "centroid_weight": 0.5}),
    ("lorentz", {"contrastive": "angle", "centroid_weight": 0.5}),
    ("lorentz", {"logit": "neg_dist", "entail_weight": 0.2}),
]


@pytest.mark.parametrize(("geo", "kw"), OBJECTIVES, ids=[f"{g}-{k}" for g, k in OBJECTIVES])
def test_objective_chunk_size_same_loss(geo: str, kw: dict) -> None:
    img, txt = _points(geo)
    results = []
    for chunk in (0, 8):
        obj = Objective(geo, **kw, logit_scale=7.0, chunk_size=chunk)
        i, t = img.clone().requires_grad_(True), txt.clone().requires_grad_(True)
        c = torch.tensor(1.3, requires_grad=True)
        out = obj(i, t, c)
        params = [i, t, c, *obj.parameters()]
        grads = torch.autograd.grad(out["loss"], params, allow_unused=True)
        results.append((out, [torch.zeros_like(p) if x is None else x
                              for p, x in zip(params, grads, strict=True)]))
    (ref, ref_g), (got, got_g) = results
    assert ref.keys() == got.keys()
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], atol=1e-5, rtol=1e-5)
    for x, y in zip(got_g, ref_g, strict=True):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def test_model_with_chunk_size_same_loss() -> None:
    """A whole ClipModel (meru: Lorentz -d_L + entailment) with loss.chunk_size."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    images = torch.randn(10, 3, 28, 28, generator=g)
    tokens = torch.randint(3, 512, (10, 16), generator=g)
    tokens[:, 9] = 2
    losses = []
    for chunk in (0, 3):
        torch.manual_seed(0)
        model = create_model("meru", **{**TINY, "loss.chunk_size": chunk})
        assert model.objective.chunk_size == chunk
        out = model(images, tokens)
        out["loss"].backward()
        losses.append((out["loss"].detach(), model.visual.patch_embed.weight.grad.clone()))
    torch.testing.assert_close(losses[1][0], losses[0][0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(losses[1][1], losses[0][1], atol=1e-6, rtol=1e-5)


def test_chunk_size_config_key() -> None:
    assert resolve("clip").loss.chunk_size == 0
    assert resolve("clip", {"loss.chunk_size": "16"}).loss.chunk_size == 16
    with pytest.raises(ConfigError, match="loss.chunk_size"):
        resolve("clip", {"loss.chunk_size": -1})
    with pytest.raises(ValueError, match="chunk_size"):
        Objective("sphere", chunk_size=-2)


# --- distributed: gathered columns, local and global rows (2 gloo processes) --------------------

WORLD, B_LOCAL = 2, 5
DIST_CONFIGS: list[dict] = [
    {"geometry": "sphere", "logit": "cosine"},
    {"geometry": "lorentz", "logit": "neg_dist", "local_loss": True},
    {"geometry": "euclidean", "contrastive": "siglip", "logit": "neg_sqdist", "local_loss": True},
    {"geometry": "lorentz", "contrastive": "angle"},
    {"geometry": "euclidean", "contrastive": "angle", "local_loss": True},
]


def _dist_run(cfg: dict, chunk: int, img: Tensor, txt: Tensor) -> list[Tensor]:
    torch.manual_seed(0)
    obj = Objective(**cfg, logit_scale=3.0, chunk_size=chunk).double()
    i, t = img.clone().requires_grad_(True), txt.clone().requires_grad_(True)
    loss = obj(i, t, 1.0)["loss"]
    loss.backward()
    assert i.grad is not None and t.grad is not None
    return [loss.detach(), i.grad, t.grad, obj.logit_scale.log_value.grad]


def _worker(rank: int, port: int, outdir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD)
    try:
        img, txt = _points("lorentz", torch.float64, n=WORLD * B_LOCAL, seed=3)
        sl = slice(rank * B_LOCAL, (rank + 1) * B_LOCAL)
        out = [[_dist_run(cfg, chunk, img[sl], txt[sl]) for chunk in (0, 3)]
               for cfg in DIST_CONFIGS]
        torch.save(out, os.path.join(outdir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_chunked_equals_unchunked(tmp_path: Path) -> None:
    if not dist.is_available():
        pytest.skip("torch.distributed not available")
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        per_cfg = torch.load(tmp_path / f"rank{rank}.pt")
        for cfg, (plain, chunked) in zip(DIST_CONFIGS, per_cfg, strict=True):
            for k, (a, b) in enumerate(zip(chunked, plain, strict=True)):
                # the logit scale s is float32 (LogitScale): its gradient is summed in float32
                # over the unchunked path's two products s * L, s * L_t
                tol = 1e-6 if k == 3 else 1e-12
                torch.testing.assert_close(a, b, atol=tol, rtol=tol, msg=str(cfg))
