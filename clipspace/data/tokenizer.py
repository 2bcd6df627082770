"""Byte-level BPE tokenizer with start/end tokens and a fixed context length.

Wraps a ``tokenizers.Tokenizer`` (ByteLevel pre-tokenizer without prefix space, ByteLevel decoder)
so that ``decode(encode(text)) == text`` for any UTF-8 text. Every encoded row is
``[SOT, t_1, ..., t_n, EOT, PAD, ...]`` of length ``context_length``: text longer than
``context_length - 2`` tokens is truncated *before* the end token, so EOT is always present and
is the last non-pad token. PAD has id 0.

The text tower pools at the end token: ``end_positions(tokens, eot_id)`` gives its position per
row (first occurrence of ``eot_id``; no assumption that EOT has the largest id).

``save`` writes the ``tokenizers`` JSON with one extra top-level key, ``"clipspace"``, holding
``{"context_length": L, "sot": ..., "eot": ..., "pad": ...}``; it is removed again before the JSON
is handed to ``tokenizers`` on load, so a plain tokenizer.json from elsewhere also loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer as _Backend
from tokenizers import decoders, models, pre_tokenizers, trainers

from clipspace.data.hf_tokenizer import HFTokenizer, is_hf_tokenizer_dir, load_hf_tokenizer
from clipspace.errors import DataError
from clipspace.io import atomic_write_text

PAD = "<pad>"
SOT = "<start_of_text>"
EOT = "<end_of_text>"
SPECIAL_TOKENS: tuple[str, str, str] = (PAD, SOT, EOT)  # ids 0, 1, 2 after training
# names tried, in order, when a tokenizer.json has no "clipspace" section (e.g. OpenAI CLIP's)
_SOT_NAMES = (SOT, "<|startoftext|>", "<s>", "[CLS]")
_EOT_NAMES = (EOT, "<|endoftext|>", "</s>", "[SEP]")
_PAD_NAMES = (PAD, "<pad>", "[PAD]")
DEFAULT_CONTEXT_LENGTH = 77
FILE_NAME = "tokenizer.json"
CACHE_SIZE = 1 << 18  # texts whose encodings are cached per Tokenizer


def end_positions(tokens: torch.Tensor, eot_id: int) -> torch.Tensor:
    """Position of the first ``eot_id`` in each row of ``tokens`` (B, L) -> LongTensor (B,).

    Rows without an end token (never produced by ``Tokenizer``) give the last position.
    """
    hit = tokens == eot_id
    pos = hit.int().argmax(dim=-1)
    last = torch.full_like(pos, tokens.shape[-1] - 1)
    return torch.where(hit.any(dim=-1), pos, last).long()


class Tokenizer:
    """Callable tokenizer: ``tok("3-red")`` or ``tok([...])`` -> LongTensor (B, context_length)."""

    def __init__(
        self,
        backend,  # tokenizers.Tokenizer
        context_length: int = DEFAULT_CONTEXT_LENGTH,
        sot: str = SOT,
        eot: str = EOT,
        pad: str = PAD,
    ) -> None:
        if context_length < 2:
            raise DataError(f"tokenizer context_length must be >= 2, got {context_length}")
        self.backend = backend
        self.context_length = int(context_length)
        ids = {}
        for name, tok in (("start", sot), ("end", eot), ("pad", pad)):
            i = backend.token_to_id(tok)
            if i is None:
                raise DataError(f"tokenizer has no {name} token {tok!r}")
            ids[name] = int(i)
        self.sot, self.eot, self.pad = sot, eot, pad
        self.sot_id, self.eot_id, self.pad_id = ids["start"], ids["end"], ids["pad"]
        self._special = {self.sot_id, self.eot_id, self.pad_id}
        self._cache: dict[str, tuple[int, ...]] = {}

    def __getstate__(self) -> dict:
        """Pickle (DataLoader workers) without the encoding cache."""
        return {**self.__dict__, "_cache": {}}

    # ---- properties -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return int(self.backend.get_vocab_size(with_added_tokens=True))

    # ---- encoding ---------------------------------------------------------------------------
    def _wrap(self, ids: Sequence[int]) -> list[int]:
        """SOT + ids (truncated to L - 2) + EOT, no padding."""
        body = list(ids[: self.context_length - 2])
        return [self.sot_id, *body, self.eot_id]

    def encode(self, text: str) -> list[int]:
        """Token ids with SOT/EOT, truncated to ``context_length`` (EOT kept last), unpadded."""
        ids = self._cache.get(text)
        if ids is None:
            ids = self._remember(text, self.backend.encode(text, add_special_tokens=False).ids)
        return list(ids)

    def _remember(self, text: str, raw: Sequence[int]) -> tuple[int, ...]:
        """Wrap raw ids and keep them in the text cache (cleared when full)."""
        ids = tuple(self._wrap(raw))
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[text] = ids
        return ids

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Batch encode to a padded LongTensor (B, context_length); a str gives B = 1.

        Encodings are cached by text (captions repeat across epochs, prompts across calls):
        the ``tokenizers`` encode costs ~50 us per caption on a busy core, a cache hit ~0.2 us.
        """
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        out = np.full((len(texts), self.context_length), self.pad_id, dtype=np.int64)
        rows = [self._cache.get(t) for t in texts]
        missing = [i for i, r in enumerate(rows) if r is None]
        if missing:
            encs = self.backend.encode_batch([texts[i] for i in missing], add_special_tokens=False)
            for i, enc in zip(missing, encs, strict=True):
                rows[i] = self._remember(texts[i], enc.ids)
        for row, ids in enumerate(rows):
            out[row, : len(ids)] = ids
        return torch.from_numpy(out)

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Text of ``ids`` with start/end/pad tokens stripped."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        keep = [int(i) for i in ids if int(i) not in self._special]
        return self.backend.decode(keep, skip_special_tokens=False)

    def end_positions(self, tokens: torch.Tensor) -> torch.Tensor:
        """``end_positions(tokens, self.eot_id)``."""
        return end_positions(tokens, self.eot_id)

    # ---- persistence ------------------------------------------------------------------------
    def to_json(self) -> str:
        data = json.loads(self.backend.to_str())
        data["clipspace"] = {
            "context_length": self.context_length,
            "sot": self.sot,
            "eot": self.eot,
            "pad": self.pad,
        }
        return json.dumps(data, ensure_ascii=False)

    def save(self, path: str | Path) -> Path:
        """Write tokenizer.json atomically; a directory ``path`` gets ``path/tokenizer.json``."""
        path = Path(path)
        if path.is_dir():
            path = path / FILE_NAME
        atomic_write_text(path, self.to_json())
        return path

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, context_length={self.context_length})"


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 1000,
    context_length: int = 16,
    min_frequency: int = 1,
) -> Tokenizer:
    """Train a byte-level BPE on ``texts``; the full 256-byte alphabet is always included."""
    backend = _Backend(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=int(vocab_size),
        min_frequency=int(min_frequency),
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return Tokenizer(backend, context_length=context_length)


def _first_present(backend, names: Sequence[str]) -> str | None:
    for name in names:
        if backend.token_to_id(name) is not None:
            return name
    return None


def load_tokenizer_json(path: str | Path, context_length: int | None = None) -> Tokenizer:
    """Load a tokenizer.json file (ours, or any ``tokenizers`` file with start/end/pad tokens)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read tokenizer JSON ({err})") from err
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a tokenizer JSON object")
    meta = data.pop("clipspace", {}) or {}
    try:
        backend = _Backend.from_str(json.dumps(data))
    except Exception as err:  # tokenizers raises a plain Exception on a bad schema
        raise DataError(f"{path}: invalid tokenizer.json ({err})") from err
    sot = meta.get("sot") or _first_present(backend, _SOT_NAMES)
    eot = meta.get("eot") or _first_present(backend, _EOT_NAMES)
    pad = meta.get("pad") or _first_present(backend, _PAD_NAMES) or eot
    if sot is None or eot is None:
        raise DataError(
            f"{path}: tokenizer has no start/end tokens (tried {_SOT_NAMES} / {_EOT_NAMES})"
        )
    length = context_length or int(meta.get("context_length", DEFAULT_CONTEXT_LENGTH))
    try:
        return Tokenizer(backend, context_length=length, sot=sot, eot=eot, pad=pad)
    except DataError as err:
        raise DataError(f"{path}: {err}") from err


def get_tokenizer(
    path_or_dir: str | Path, context_length: int | None = None
) -> Tokenizer | HFTokenizer:
    """A tokenizer from a tokenizer.json file or a directory holding one (MAD dir, run dir).

    A transformers tokenizer directory (``hf_tokenizer.is_hf_tokenizer_dir``: a CLIP / SigLIP
    checkpoint directory, or its ``tokenizer.json``) gives an ``HFTokenizer``, whose ids are
    transformers' own (``padding="max_length"``, as the CLIP and SigLIP processors pad).
    ``context_length`` overrides the stored one (e.g. the text tower's).
    """
    path = Path(path_or_dir)
    hf_dir = path if path.is_dir() else path.parent
    if (path.is_dir() or path.name == FILE_NAME) and is_hf_tokenizer_dir(hf_dir):
        return load_hf_tokenizer(hf_dir, context_length)
    if path.is_dir():
        path = path / FILE_NAME
    if not path.is_file():
        raise DataError(f"tokenizer file not found: {path}")
    return load_tokenizer_json(path, context_length=context_length)
