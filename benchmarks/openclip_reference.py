"""An open_clip-style CLIP written here, as the same-machine baseline of ``benchmarks/train.py``.

open_clip cannot be imported next to the CPU build of torch on this machine (it needs
torchvision), so ``--compare`` times this model instead, interleaved with clipspace's, and prints
the ratio; the quoted open_clip 3.3.0 figures stay as absolute references. The structure follows
open_clip's defaults for a ViT + text transformer CLIP (not its code):

- image: conv patch embedding (no bias), class token, learned positions, LN_pre, pre-LN residual
  blocks with ``nn.MultiheadAttention(batch_first=True)`` and a GELU MLP (ratio 4), LN_post on
  every token, the class token, then a projection matrix;
- text: token + learned positions, the same blocks with an additive causal mask, LN_final on
  every token, the feature at the highest token id (the end token), a projection matrix;
- loss: L2-normalised features, logits ``exp(t) * I T^T`` both ways, mean cross-entropy;
- AdamW (betas 0.9, 0.98, eps 1e-6), no weight decay on gains, biases, embeddings and the scale.

Every block runs on every token, as in open_clip; clipspace's towers compute only the pooled token
in their last block (``clipspace/models/vit.py``), which is the main difference in speed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        hidden = 4 * width
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class _Tower(nn.Module):
    def __init__(self, width: int, depth: int, heads: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_Block(width, heads) for _ in range(depth))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, mask)
        return x


class ReferenceClip(nn.Module):
    """ViT + causal text transformer CLIP with open_clip's default structure."""

    def __init__(self, image_size: int = 28, patch: int = 4, width: int = 128, depth: int = 4,
                 heads: int = 2, text_width: int = 128, text_depth: int = 4, text_heads: int = 2,
                 context: int = 16, vocab: int = 1000, embed_dim: int = 128) -> None:
        super().__init__()
        self.image_size, self.context_length = image_size, context
        n = (image_size // patch) ** 2 + 1
        s = width**-0.5
        self.conv1 = nn.Conv2d(3, width, patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(s * torch.randn(width))
        self.positional_embedding = nn.Parameter(s * torch.randn(n, width))
        self.ln_pre = nn.LayerNorm(width)
        self.visual = _Tower(width, depth, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(s * torch.randn(width, embed_dim))
        self.token_embedding = nn.Embedding(vocab, text_width)
        self.text_pos = nn.Parameter(0.01 * torch.randn(context, text_width))
        self.text = _Tower(text_width, text_depth, text_heads)
        self.ln_final = nn.LayerNorm(text_width)
        self.text_projection = nn.Parameter(text_width**-0.5 * torch.randn(text_width, embed_dim))
        mask = torch.full((context, context), float("-inf")).triu(1)
        self.register_buffer("attn_mask", mask, persistent=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        x = self.conv1(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], dim=1)
        x = self.ln_pre(x + self.positional_embedding)
        x = self.ln_post(self.visual(x))
        return x[:, 0] @ self.proj

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        x = self.token_embedding(tokens) + self.text_pos[:length]
        x = self.ln_final(self.text(x, self.attn_mask[:length, :length]))
        return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ self.text_projection

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        img = F.normalize(self.encode_image(images), dim=-1)
        txt = F.normalize(self.encode_text(tokens), dim=-1)
        logits = self.logit_scale.exp() * img @ txt.T
        labels = torch.arange(logits.shape[0])
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        return {"loss": loss}


def reference_optimizer(model: nn.Module, lr: float = 5e-4, wd: float = 0.2) -> torch.optim.AdamW:
    """AdamW with open_clip's parameter split: no decay on 1-D parameters and embeddings."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        exclude = p.ndim < 2 or "embedding" in name or "logit_scale" in name
        (no_decay if exclude else decay).append(p)
    groups = [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": wd}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)


# the two configurations the training issue compares (open_clip 3.3.0's measured ms per step)
REFERENCE_CONFIGS: dict[str, dict[str, int]] = {
    "mad-vit": {"width": 128, "depth": 4, "heads": 2,
                "text_width": 128, "text_depth": 4, "text_heads": 2},
    "mad-vit-256": {"width": 256, "depth": 6, "heads": 4,
                    "text_width": 256, "text_depth": 6, "text_heads": 4},
}
