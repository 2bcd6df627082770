"""Test-wide settings: hypothesis runs derandomized so that CI is reproducible (set
HYPOTHESIS_PROFILE=explore locally to search new random examples)."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
