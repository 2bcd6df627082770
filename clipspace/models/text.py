"""Causal text transformer (Radford et al. 2021, CLIP section 2.4) pooled at the end token.

token embedding + learned positions -> ``depth`` pre-LN causal blocks -> optional final LN ->
the feature at the end-of-text position. Because attention is causal, padding after the end
token cannot change the pooled feature: a batch is cut to its longest caption before the tower,
and the last block computes the end token only (``Transformer(pool_index=...)``).
"""

from __future__ import annotations

import torch
from torch import nn

from clipspace.config import ConfigError
from clipspace.models.vit import Transformer


def end_positions(tokens: torch.Tensor, eot_id: int | None = None, pad_id: int = 0) -> torch.Tensor:
    """Index of the end token in each row of ``tokens`` (B, L) -> (B,) long.

    With ``eot_id``: the first position holding ``eot_id``. Rows without it (and every row when
    ``eot_id`` is None) fall back to the last position that is not ``pad_id`` (0 if all padding).
    A local copy of the tokenizer's helper: models must not import the data layer.
    """
    length = tokens.shape[1]
    idx = torch.arange(length, device=tokens.device).expand_as(tokens)
    nonpad = tokens != pad_id
    last_nonpad = torch.where(nonpad, idx, torch.zeros_like(idx)).amax(dim=1)
    if eot_id is None:
        return last_nonpad
    is_eot = tokens == eot_id
    first_eot = torch.where(is_eot, idx, torch.full_like(idx, length)).amin(dim=1)
    return torch.where(is_eot.any(dim=1), first_eot, last_nonpad)


class TextTransformer(nn.Module):
    """Text tower: (B, L) token ids -> (B, width) features at the end token.

    ``eot_id``/``pad_id`` locate the end token (see ``end_positions``). Sequences shorter than
    ``context_length`` are fine; longer ones are an error.
    """

    def __init__(
        self,
        vocab_size: int = 1000,
        context_length: int = 16,
        width: int = 128,
        depth: int = 2,
        heads: int = 2,
        mlp_ratio: float = 4.0,
        final_ln: bool = True,
        eot_id: int | None = None,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.vocab_size, self.context_length, self.width = vocab_size, context_length, width
        self.output_dim = width
        self.eot_id, self.pad_id = eot_id, pad_id
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.pos_embed = nn.Parameter(torch.empty(context_length, width))
        self.transformer = Transformer(width, depth, heads, mlp_ratio, causal=True)
        self.ln_final = nn.LayerNorm(width) if final_ln else nn.Identity()
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.pos_embed, std=0.01)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing per transformer block (``vit.Transformer``)."""
        self.transformer.set_grad_checkpointing(enable)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2:
            raise ValueError(f"text tokens must be (B, L), got shape {tuple(tokens.shape)}")
        length = tokens.shape[1]
        if length > self.context_length:
            raise ConfigError(
                f"text of length {length} exceeds model.text.context_length={self.context_length}"
            )
        pos = end_positions(tokens, self.eot_id, self.pad_id)
        if tokens.shape[0] and not torch.compiler.is_compiling():
            # Causal attention: tokens after the last end token cannot reach any pooled feature,
            # so the batch runs at its longest caption, not at the context length.
            length = int(pos.max()) + 1
            tokens = tokens[:, :length]
        x = self.token_embedding(tokens) + self.pos_embed[:length]
        return self.ln_final(self.transformer(x, pool_index=pos))


__all__ = ["TextTransformer", "end_positions"]
