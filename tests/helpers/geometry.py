"""Hypothesis strategies and helpers shared by the geometry property tests."""

from __future__ import annotations

import torch
from hypothesis import settings
from hypothesis import strategies as st

PROPS = settings(max_examples=50, deadline=None)
FEW = settings(max_examples=20, deadline=None)

seeds = st.integers(min_value=0, max_value=2**31 - 1)
dims = st.integers(min_value=1, max_value=8)
curvs = st.floats(min_value=0.01, max_value=100.0)
log_scales = st.floats(min_value=-2.0, max_value=1.0)  # vector norms ~ 10^scale
dtypes = st.sampled_from([torch.float64, torch.float32])

# (rtol/atol) by dtype for values that should agree exactly in exact arithmetic
TOL = {torch.float64: 1e-8, torch.float32: 2e-3}


def randn(seed: int, *shape: int, dtype: torch.dtype = torch.float64, scale: float = 1.0):
    """Deterministic Gaussian tensor for a hypothesis-drawn seed."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def lorentz_time(x: torch.Tensor, c: float) -> torch.Tensor:
    """Full time part x_t = sqrt(1/c + |x|^2), computed independently of the library."""
    return torch.sqrt(1.0 / c + (x * x).sum(-1))
