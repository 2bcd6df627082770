"""Shared builders for the test suite (plain functions and constants, no fixtures).

The session-scoped fixtures built from them live in ``tests/conftest.py``:

- ``mad``: tiny MAD directories (the generated ``tiny_mad`` and the hand-written layout used by
  the reader tests), random label sets;
- ``configs``: the tiny model overrides (``TINY``) and ``tiny_config`` for training runs;
- ``geometry``: hypothesis strategies and helpers of the geometry property tests;
- ``losses``: every loss x geometry as ``f(img, txt, curv)`` (``CASES``);
- ``hf``: a random tiny Hugging Face CLIP checkpoint;
- ``finetune``: the hand-made chains and HierarCaps CSVs of the fine-tuning tests;
- ``runs``: fake run directories for the report tests.
"""
