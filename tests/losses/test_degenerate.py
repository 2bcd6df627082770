"""Every loss: finite value and gradients on degenerate inputs, float32 and bf16 autocast."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tests.helpers.losses import CASES

D = 8


def _degenerate() -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    g = torch.Generator().manual_seed(0)
    r = torch.randn(4, D, generator=g)
    unit = r / r.norm(dim=-1, keepdim=True)
    zero_row = r.clone()
    zero_row[1] = 0.0
    return {
        "identical": (r.clone(), r.clone(), 1.0),
        "zeros": (torch.zeros(4, D), torch.zeros(4, D), 1.0),
        "one-zero-row": (zero_row, r.flip(0), 1.0),
        "norm1e-6": (1e-6 * unit, 1e-6 * unit.flip(0), 1.0),
        "norm1e4": (1e4 * unit, 1e4 * unit.flip(0), 1.0),
        "mixed-norms": (1e4 * unit, 1e-6 * unit, 1.0),
        "batch1": (r[:1].clone(), r[1:2].clone(), 1.0),
        "batch1-identical": (r[:1].clone(), r[:1].clone(), 1.0),
        "curv0.01": (r.clone(), r.flip(0), 0.01),
        "curv100": (r.clone(), r.flip(0), 100.0),
        "curv100-huge": (1e4 * unit, 1e4 * unit.flip(0), 100.0),
        "curv0.01-tiny": (1e-6 * unit, 1e-6 * unit, 0.01),
    }


DEGENERATE = _degenerate()


@pytest.mark.parametrize("mode", ["float32", "bf16-autocast"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_finite_on_degenerate_inputs(name: str, mode: str) -> None:
    fn = CASES[name]
    for case, (img0, txt0, c) in DEGENERATE.items():
        img = img0.clone().requires_grad_(True)
        txt = txt0.clone().requires_grad_(True)
        curv = torch.tensor(c, requires_grad=True)
        if mode == "float32":
            loss = fn(img, txt, curv)
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = fn(img.to(torch.bfloat16), txt.to(torch.bfloat16), curv)
        assert loss.dtype == torch.float32, (case, loss.dtype)
        assert loss.dim() == 0
        assert torch.isfinite(loss), (name, mode, case, loss)
        loss.backward()
        for t in (img, txt, curv):
            if t.grad is not None:
                assert torch.isfinite(t.grad).all(), (name, mode, case, t.grad)


class _MaxNumel(TorchDispatchMode):
    """Records the largest tensor any op produces (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_never_builds_b_b_d_tensor(name: str) -> None:
    b, d = 16, 12  # B*B*D = 3072 while B*B = 256 and B*D = 192
    g = torch.Generator().manual_seed(9)
    img = (0.3 * torch.randn(b, d, generator=g)).requires_grad_(True)
    txt = (0.3 * torch.randn(b, d, generator=g)).requires_grad_(True)
    with _MaxNumel() as mode:
        CASES[name](img, txt, torch.tensor(1.0, requires_grad=True)).backward()
    assert 0 < mode.max_numel <= b * b, mode.max_numel
