"""transformers tokenizers behind clipspace's tokenizer interface (optional extra ``hf``).

``HFTokenizer(hf_tokenizer, context_length)`` is called like clipspace's own ``Tokenizer``:
``tok(str | list[str]) -> LongTensor (B, context_length)``. The rows are exactly transformers'
``hf_tokenizer(texts, padding="max_length", truncation=True, max_length=context_length)
["input_ids"]``, i.e. what transformers' processors feed the model:

- CLIP (``CLIPTokenizer``): ``[SOT] ids [EOT]`` then the pad token (``<|endoftext|>`` for
  OpenAI's checkpoints); truncation keeps the end token. The text tower pools at the end token,
  so the padding never changes the features (causal attention).
- SigLIP / SigLIP 2: ``ids </s>`` (SigLIP; Gemma's ``<eos>`` for SigLIP 2 when its tokenizer adds
  one) padded to ``max_length`` (64 for the released checkpoints) with the tokenizer's pad token
  (SigLIP: ``</s>`` again) on the tokenizer's ``padding_side``. SigLIP pools the *last position*,
  which is usually padding: the model was trained on max-length padded text without an attention
  mask, so the padding is part of its input (``SiglipModel`` docs: "make sure to set
  padding='max_length' as that's how the model was trained"). No attention mask is produced.

``load_hf_tokenizer(dir)`` loads a directory with ``AutoTokenizer`` at the context length of the
model's text tower (``config.json`` ``text_config.max_position_embeddings``).
``is_hf_tokenizer_dir(dir)`` recognises such directories (``tokenizer_config.json``, or a
``tokenizer.json`` next to a transformers ``config.json``); ``data.tokenizer.get_tokenizer``
uses it so that ``clipspace.get_tokenizer(HF_DIR)`` gives transformers' ids.

``transformers`` is imported lazily, only when a tokenizer is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipspace.errors import ClipspaceError, DataError

HF_CONFIG = "config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
#: files that hold a transformers tokenizer's vocabulary (any one suffices)
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "spiece.model", "tokenizer.model", "vocab.txt")
DEFAULT_CONTEXT_LENGTH = 77
#: ``model_max_length`` above this is transformers' "no limit" sentinel, not a real length
_NO_LIMIT = 100_000


def import_transformers() -> Any:
    """The ``transformers`` module, or a ClipspaceError saying how to install it."""
    try:
        import transformers
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ClipspaceError(
            "Hugging Face models and tokenizers need transformers: pip install 'clipspace[hf]'"
        ) from err
    return transformers


def read_hf_config(directory: str | Path) -> dict[str, Any] | None:
    """``directory/config.json`` as a dict if it is a transformers config (has ``model_type``),
    else None (absent, unreadable, or a clipspace run's config)."""
    path = Path(directory) / HF_CONFIG
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
        return None
    return data


def has_tokenizer_files(directory: str | Path) -> bool:
    """Whether ``directory`` holds a transformers tokenizer's vocabulary file."""
    return any((Path(directory) / name).is_file() for name in TOKENIZER_FILES)


def is_hf_tokenizer_dir(path: str | Path) -> bool:
    """True for a transformers tokenizer directory: ``tokenizer_config.json`` with a vocabulary
    file, or a ``tokenizer.json`` next to a transformers ``config.json`` (``model_type`` set).
    clipspace's own MAD / run directories hold a bare ``tokenizer.json`` and are not matched."""
    p = Path(path)
    if not p.is_dir() or not has_tokenizer_files(p):
        return False
    return (p / TOKENIZER_CONFIG).is_file() or read_hf_config(p) is not None


def hf_context_length(directory: str | Path, hf_tokenizer: Any = None) -> int:
    """The text tower's length: ``config.json`` ``text_config.max_position_embeddings`` (or a
    top-level ``max_position_embeddings``), else the tokenizer's ``model_max_length`` when it is a
    real limit, else 77."""
    data = read_hf_config(directory) or {}
    text = data.get("text_config") if isinstance(data.get("text_config"), dict) else data
    value = text.get("max_position_embeddings")
    if isinstance(value, int) and value > 0:
        return value
    limit = getattr(hf_tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 2 <= limit < _NO_LIMIT:
        return limit
    return DEFAULT_CONTEXT_LENGTH


class HFTokenizer:
    """clipspace tokenizer interface over a transformers tokenizer (see the module docstring).

    ``tok(texts)`` equals ``hf(texts, padding="max_length", truncation=True,
    max_length=context_length)["input_ids"]``; ``sot_id`` / ``eot_id`` / ``pad_id`` are the
    tokenizer's bos / eos / pad ids (``sot_id`` and ``eot_id`` may be None; a tokenizer without
    a pad token pads with its eos token, as OpenAI CLIP does).
    """

    def __init__(self, hf_tokenizer: Any, context_length: int = DEFAULT_CONTEXT_LENGTH) -> None:
        self.hf = hf_tokenizer
        self.context_length = int(context_length)
        if self.context_length < 2:
            raise ClipspaceError(f"context_length must be >= 2, got {context_length}")
        if hf_tokenizer.pad_token is None:
            if hf_tokenizer.eos_token is None:
                raise ClipspaceError("Hugging Face tokenizer has neither a pad nor an eos token")
            hf_tokenizer.pad_token = hf_tokenizer.eos_token
        eot, sot = hf_tokenizer.eos_token_id, hf_tokenizer.bos_token_id
        self.eot_id = None if eot is None else int(eot)
        self.sot_id = None if sot is None else int(sot)
        self.pad_id = int(hf_tokenizer.pad_token_id)
        self._special = {i for i in (self.sot_id, self.eot_id, self.pad_id) if i is not None}

    @property
    def vocab_size(self) -> int:
        return int(len(self.hf))

    def _ids(self, texts: list[str], pad: bool) -> list[list[int]]:
        out = self.hf(
            texts, padding="max_length" if pad else False, truncation=True,
            max_length=self.context_length, return_attention_mask=False,
        )["input_ids"]
        return [list(row) for row in out]

    def encode(self, text: str) -> list[int]:
        """transformers' ids of ``text`` with its special tokens, truncated, unpadded."""
        return self._ids([text], pad=False)[0]

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        """LongTensor (B, context_length) of transformers' max-length padded ids."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            return torch.zeros((0, self.context_length), dtype=torch.long)
        return torch.from_numpy(np.asarray(self._ids(texts, pad=True), dtype=np.int64))

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Text of ``ids`` with start/end/pad (and other special) tokens dropped."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        keep = [int(i) for i in ids if int(i) not in self._special]
        return str(self.hf.decode(keep, skip_special_tokens=True))

    def save(self, path: str | Path) -> Path:
        """``save_pretrained`` into directory ``path``; a ``.json`` path (a run's
        ``tokenizer.json``) saves into its folder. Returns the directory."""
        path = Path(path)
        if path.suffix == ".json":
            path = path.parent
        path.mkdir(parents=True, exist_ok=True)
        self.hf.save_pretrained(str(path))
        return path

    def __repr__(self) -> str:
        return f"HFTokenizer(vocab_size={self.vocab_size}, context_length={self.context_length})"


def load_hf_tokenizer(directory: str | Path, context_length: int | None = None) -> HFTokenizer:
    """``HFTokenizer`` of a transformers directory via ``AutoTokenizer.from_pretrained``; the
    context length defaults to ``hf_context_length`` (the text tower's positions)."""
    base = Path(directory)
    tr = import_transformers()
    try:
        tok = tr.AutoTokenizer.from_pretrained(str(base))
    except (OSError, ValueError, ImportError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        hint = "; pip install sentencepiece" if "sentencepiece" in first.lower() else ""
        raise DataError(f"{base}: cannot load the Hugging Face tokenizer ({first}{hint})") \
            from None
    if tok is None or isinstance(tok, bool):  # AutoTokenizer without a backend (sentencepiece)
        raise DataError(f"{base}: cannot load the Hugging Face tokenizer (missing backend)")
    if context_length is None:
        context_length = hf_context_length(base, tok)
    return HFTokenizer(tok, context_length)


__all__ = [
    "HFTokenizer",
    "has_tokenizer_files",
    "hf_context_length",
    "import_transformers",
    "is_hf_tokenizer_dir",
    "load_hf_tokenizer",
    "read_hf_config",
]
