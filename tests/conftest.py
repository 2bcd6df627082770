"""Test-wide settings and shared fixtures (builders in ``tests/helpers``).

Hypothesis runs derandomized so that CI is reproducible (set HYPOTHESIS_PROFILE=explore locally to
search new random examples).

Session fixtures (read-only: a test that needs to change one copies it first):
- ``tiny_mad``: the shared tiny MAD directory, the real generator on 30 embedded MNIST digits
  (``tests.helpers.mad``: 576 train / 144 test images, tokenizer.json included);
- ``finetune_hf_clip``: a random tiny Hugging Face CLIP whose tokenizer knows the captions of
  ``tests.helpers.finetune.CHAINS`` (skipped without ``transformers``).
Every test restores torch's intra-op thread count afterwards (``_restore_threads``): training
sets it from ``run.threads``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# pytest-xdist (``-n 2`` in pyproject.toml): one intra-op thread per worker, so two workers on
# two cores do not oversubscribe them; training tests set run.threads themselves
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def tiny_mad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.mad import generate_tiny_mad

    return generate_tiny_mad(tmp_path_factory.mktemp("tiny_mad") / "mad")


@pytest.fixture(scope="session")
def finetune_hf_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from tests.helpers.finetune import CHAINS_CORPUS
    from tests.helpers.hf import make_tiny_hf_clip

    return make_tiny_hf_clip(tmp_path_factory.mktemp("ft") / "tiny-clip", CHAINS_CORPUS)


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
