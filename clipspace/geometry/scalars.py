"""Learnable scalars of a geometry, as nn.Modules whose ``forward()`` returns a 0-dim float32.

All are parametrised in log-space and clamped in the forward pass (the clamp's gradient is zero
outside the range, as in MERU's clamped curvature / logit scale).
"""

from __future__ import annotations

import math
from types import ModuleType

import torch
from torch import Tensor, nn

from . import get_geometry
from ._numerics import geometry_fn, safe_normalize


class _LogScalar(nn.Module):
    """exp(clamp(log_value, lo, hi)) with a learnable or fixed log_value."""

    def __init__(self, init: float, learnable: bool, lo: float | None, hi: float | None) -> None:
        super().__init__()
        if not init > 0 or not math.isfinite(init):
            raise ValueError(f"{type(self).__name__}: init must be finite and > 0 (got {init})")
        self._lo = math.log(lo) if lo is not None else None
        self._hi = math.log(hi) if hi is not None else None
        self.log_value = nn.Parameter(
            torch.tensor(math.log(init), dtype=torch.float32), requires_grad=learnable
        )

    @property
    def learnable(self) -> bool:
        return self.log_value.requires_grad

    def forward(self) -> Tensor:
        return self.log_value.float().clamp(min=self._lo, max=self._hi).exp()

    def extra_repr(self) -> str:
        return f"value={float(self.forward().detach()):.4g}, learnable={self.learnable}"


class Curvature(_LogScalar):
    """Curvature c of the Lorentz model (curvature -c): c = exp(clamp(log c, log min, log max))."""

    def __init__(
        self, init: float = 1.0, learnable: bool = True, min: float = 0.1, max: float = 10.0
    ) -> None:
        if not 0 < min <= max:
            raise ValueError(f"Curvature: need 0 < min <= max (got min={min}, max={max})")
        super().__init__(init, learnable, min, max)


class EmbedScale(_LogScalar):
    """Per-tower embedding scale alpha (MERU), log-space, alpha = exp(min(log alpha, log max))."""

    def __init__(self, init: float, learnable: bool = True, max: float = 1.0) -> None:
        super().__init__(init, learnable, None, max)


class LogitScale(_LogScalar):
    """Logit scale s = exp(clamp(log s, max=log(max))) (CLIP: init 1/0.07, max 100)."""

    def __init__(self, init: float = 1 / 0.07, learnable: bool = True, max: float = 100.0) -> None:
        super().__init__(init, learnable, None, max)


EMBED_SCALES = ("none", "sqrt_dim", "alpha")


class PointMap(nn.Module):
    """Encoder features -> points: exp_map0(scale(features), c).

    embed_scale: "none" (f), "sqrt_dim" (f / sqrt(D), EuCLIP), "alpha" (alpha f, alpha init
    1/sqrt(D), learnable when learn_alpha, <= 1; MERU). On the sphere the tangent vector is
    L2-normalised (so the scale has no effect there).
    """

    def __init__(
        self,
        geometry: str | ModuleType,
        dim: int,
        embed_scale: str = "none",
        learn_alpha: bool = True,
    ) -> None:
        super().__init__()
        if embed_scale not in EMBED_SCALES:
            raise ValueError(
                f"PointMap: embed_scale must be one of {EMBED_SCALES}, got {embed_scale!r}"
            )
        if dim <= 0:
            raise ValueError(f"PointMap: dim must be > 0 (got {dim})")
        self.geometry = get_geometry(geometry)
        self.dim = dim
        self.embed_scale = embed_scale
        self.alpha: EmbedScale | None = None
        if embed_scale == "alpha":
            self.alpha = EmbedScale(1.0 / math.sqrt(dim), learnable=learn_alpha)

    def tangent(self, features: Tensor) -> Tensor:
        """Scaled features (alpha f, f / sqrt(D) or f), float32; L2-normalised on the sphere."""
        return _tangent(features, self.alpha() if self.alpha is not None else None, self)

    def forward(self, features: Tensor, curv: float | Tensor = 1.0) -> Tensor:
        return self.geometry.exp_map0(self.tangent(features), curv)

    def extra_repr(self) -> str:
        return f"geometry={self.geometry.__name__.rsplit('.', 1)[-1]}, dim={self.dim}, " + (
            f"embed_scale={self.embed_scale}"
        )


@geometry_fn
def _tangent(features: Tensor, alpha: Tensor | None, pm: PointMap) -> Tensor:
    if pm.embed_scale == "alpha" and alpha is not None:
        v = alpha * features
    elif pm.embed_scale == "sqrt_dim":
        v = features / math.sqrt(features.shape[-1])
    else:
        v = features
    if not pm.geometry.HAS_ORIGIN:
        v = safe_normalize(v)
    return v
