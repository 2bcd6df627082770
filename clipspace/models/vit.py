"""Vision Transformer (Dosovitskiy et al. 2021) in plain torch, plus the shared pre-LN block.

``Block``/``Transformer`` are also used by the causal text tower (``text.py``). Attention runs
through ``F.scaled_dot_product_attention`` (fused kernels on CPU and GPU) with one fused qkv
projection; initialisation follows open_clip (std width^-1/2, output projections scaled by
(2 depth)^-1/2).

Pooled last block: a tower that keeps one token per row (the class token, the end-of-text token)
needs, in its last block, the keys and values of every token but the query, attention output,
residual and MLP of that token only. ``Transformer.forward(x, pool_index)`` computes exactly that,
which removes about 80% of the last block's work (about 20% of a 4-block tower) and gives the
same numbers as running the full block and then selecting the token.

Activation checkpointing (``model.grad_checkpointing``, open_clip's ``--grad-checkpointing``):
with ``Transformer.grad_checkpointing`` on, in training mode and with gradients enabled, each
block runs under ``torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)``: only the
block inputs are kept and each block is recomputed in the backward pass, so activation memory
is the depth block inputs (B x N x width each) plus one block's activations, instead of every
block's. Values and gradients are unchanged (the recomputation runs the same operations).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from clipspace.config import ConfigError


class Attention(nn.Module):
    """Multi-head self-attention: softmax(q k^T / sqrt(d_head)) v, optionally causal."""

    def __init__(self, width: int, heads: int, causal: bool = False) -> None:
        super().__init__()
        if width % heads:
            raise ConfigError(f"tower width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.causal = causal
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))

    def forward_one(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Attention output at one query token per row: (B, N, C), (B,) -> (B, C).

        Keys and values come from every token; the query only from ``x[b, index[b]]``. Causal
        attention lets that query see keys ``j <= index[b]``.
        """
        b, n, c = x.shape
        h, d = self.heads, c // self.heads
        rows = torch.arange(b, device=x.device)
        if type(self.qkv) is nn.Linear:  # slice the weight: q of one token, k and v of all
            q = F.linear(x[rows, index], self.qkv.weight[:c], self.qkv.bias[:c])
            kv = F.linear(x, self.qkv.weight[c:], self.qkv.bias[c:])
        else:  # a wrapped layer (LoRA adapters, models.adapt) runs as a module
            qkv = self.qkv(x)
            q, kv = qkv[rows, index, :c], qkv[..., c:]
        q = q.view(b, h, 1, d)
        k, v = kv.view(b, n, 2, h, d).permute(2, 0, 3, 1, 4).unbind(0)
        mask = None
        if self.causal:
            mask = (torch.arange(n, device=x.device) <= index[:, None]).view(b, 1, 1, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.reshape(b, c))


class Mlp(nn.Module):
    def __init__(self, width: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(round(width * mlp_ratio))
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-LN residual block: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, causal: bool = False):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads, causal=causal)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = Mlp(width, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def forward_one(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``forward(x)[arange(B), index]`` without computing the other rows' outputs."""
        y = x[torch.arange(x.shape[0], device=x.device), index]
        y = y + self.attn.forward_one(self.ln_1(x), index)
        return y + self.mlp(self.ln_2(y))


class Transformer(nn.Module):
    """A stack of ``depth`` pre-LN blocks on (B, N, width) tokens.

    ``grad_checkpointing`` (default off; ``set_grad_checkpointing``): see the module docstring.
    """

    def __init__(
        self, width: int, depth: int, heads: int, mlp_ratio: float = 4.0, causal: bool = False
    ) -> None:
        super().__init__()
        self.width, self.depth = width, depth
        self.blocks = nn.ModuleList(
            Block(width, heads, mlp_ratio, causal=causal) for _ in range(depth)
        )
        self.grad_checkpointing = False
        self.reset_parameters()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass (training mode, gradients on) instead of
        storing its activations."""
        self.grad_checkpointing = bool(enable)

    def _checkpointing(self) -> bool:
        """Checkpoint now: flag on, training mode and autograd recording."""
        return self.grad_checkpointing and self.training and torch.is_grad_enabled()

    def _block(self, blk: Block, x: torch.Tensor) -> torch.Tensor:
        if self._checkpointing():
            return checkpoint(blk, x, use_reentrant=False)
        return blk(x)

    def reset_parameters(self) -> None:
        """open_clip init: attn/fc1 std w^-1/2 (fc1 (2w)^-1/2), output projections / sqrt(2L)."""
        std = self.width**-0.5
        proj_std = std * (2 * max(self.depth, 1)) ** -0.5
        for blk in self.blocks:
            nn.init.normal_(blk.attn.qkv.weight, std=std)
            nn.init.zeros_(blk.attn.qkv.bias)
            nn.init.normal_(blk.attn.proj.weight, std=proj_std)
            nn.init.zeros_(blk.attn.proj.bias)
            nn.init.normal_(blk.mlp.fc1.weight, std=(2 * self.width) ** -0.5)
            nn.init.zeros_(blk.mlp.fc1.bias)
            nn.init.normal_(blk.mlp.fc2.weight, std=proj_std)
            nn.init.zeros_(blk.mlp.fc2.bias)

    def forward(self, x: torch.Tensor, pool_index: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, width) -> (B, N, width); with ``pool_index`` (B,) -> (B, width), the last
        block's output at token ``pool_index[b]`` of each row (see the module docstring)."""
        if pool_index is None:
            for blk in self.blocks:
                x = self._block(blk, x)
            return x
        for blk in self.blocks[:-1]:
            x = self._block(blk, x)
        if not self.blocks:  # depth 0: the input tokens themselves
            return x[torch.arange(x.shape[0], device=x.device), pool_index]
        last = self.blocks[-1]
        if self._checkpointing():
            return checkpoint(last.forward_one, x, pool_index, use_reentrant=False)
        return last.forward_one(x, pool_index)


def sincos_2d(width: int, grid: int) -> torch.Tensor:
    """Fixed 2D sine-cosine positions (MAE, He et al. 2022): (grid*grid, width).

    A quarter of the channels each hold sin(y w_k), cos(y w_k), sin(x w_k), cos(x w_k) with
    w_k = 1 / 10000^(k / (width/4)).
    """
    if width % 4:
        raise ConfigError(f"model.image.width={width} must be divisible by 4 for sincos positions")
    quarter = width // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    coords = torch.arange(grid, dtype=torch.float64)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    y = yy.reshape(-1, 1) * omega
    x = xx.reshape(-1, 1) * omega
    return torch.cat([y.sin(), y.cos(), x.sin(), x.cos()], dim=1).float()


class VisionTransformer(nn.Module):
    """ViT image tower: (B, C, H, W) -> (B, width).

    patch embedding (conv, stride = patch) -> [+ class token] -> + positions -> LN_pre ->
    ``depth`` pre-LN blocks -> pool (class token, or mean over patch tokens) -> optional final LN.
    With ``pool="mean"`` no class token is created. The final LayerNorm is applied after pooling
    (identical to before pooling for the class token; for mean pooling it normalises the pooled
    feature itself).
    """

    def __init__(
        self,
        image_size: int = 28,
        patch_size: int = 4,
        width: int = 128,
        depth: int = 4,
        heads: int = 2,
        mlp_ratio: float = 4.0,
        in_channels: int = 3,
        pos_embed: str = "sincos",
        pool: str = "cls",
        final_ln: bool = True,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ConfigError(
                f"model.image.image_size={image_size} is not divisible by "
                f"model.image.patch_size={patch_size}"
            )
        if pos_embed not in ("sincos", "learned"):
            raise ConfigError(f"model.image.pos_embed={pos_embed!r}; allowed: sincos, learned")
        if pool not in ("cls", "mean"):
            raise ConfigError(f"model.image.pool={pool!r}; allowed: cls, mean")
        self.image_size, self.patch_size, self.width = image_size, patch_size, width
        self.pool = pool
        self.output_dim = width
        grid = image_size // patch_size
        self.num_patches = grid * grid
        self.patch_embed = nn.Conv2d(in_channels, width, patch_size, stride=patch_size, bias=False)
        scale = width**-0.5
        self.class_token = nn.Parameter(scale * torch.randn(width)) if pool == "cls" else None
        n_tokens = self.num_patches + (1 if pool == "cls" else 0)
        if pos_embed == "learned":
            self.pos_embed = nn.Parameter(scale * torch.randn(n_tokens, width))
        else:
            pos = sincos_2d(width, grid)
            if pool == "cls":
                pos = torch.cat([torch.zeros(1, width), pos], dim=0)
            self.register_buffer("pos_embed", pos, persistent=False)
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, depth, heads, mlp_ratio)
        self.ln_post = nn.LayerNorm(width) if final_ln else nn.Identity()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing per transformer block (``Transformer``)."""
        self.transformer.set_grad_checkpointing(enable)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, N, width)
        if self.class_token is not None:
            cls = self.class_token.to(x.dtype).expand(x.shape[0], 1, -1)
            x = torch.cat([cls, x], dim=1)
        x = self.ln_pre(x + self.pos_embed.to(x.dtype))
        if self.pool == "cls":
            index = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            return self.ln_post(self.transformer(x, pool_index=index))
        return self.ln_post(self.transformer(x).mean(dim=1))


def vit_param_count(
    image_size: int, patch_size: int, width: int, depth: int, mlp_ratio: float, in_channels: int
) -> int:
    """Closed-form parameter count of a cls-token, learned-position ViT (for cheap checks)."""
    n = (image_size // patch_size) ** 2 + 1
    hidden = int(round(width * mlp_ratio))
    block = 4 * width + (3 * width * width + 3 * width) + (width * width + width)
    block += (width * hidden + hidden) + (hidden * width + width)
    return (
        in_channels * width * patch_size * patch_size
        + width
        + n * width
        + 2 * width
        + depth * block
        + 2 * width
    )


def transformer_blocks(module: nn.Module, lists: tuple[str, ...] = ("blocks",)) -> list[nn.Module]:
    """Every child of every ``nn.ModuleList`` named one of ``lists`` under ``module``, from the
    input side: clipspace's ``blocks`` (the units activation checkpointing wraps and FSDP
    shards); with ``("blocks", "layers")`` also transformers' encoder layers (``models.adapt``)."""
    return [blk for name, mod in module.named_modules()
            if name.split(".")[-1] in lists and isinstance(mod, nn.ModuleList) for blk in mod]


__all__ = ["Attention", "Block", "Mlp", "Transformer", "VisionTransformer", "sincos_2d",
           "transformer_blocks"]
