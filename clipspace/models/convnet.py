"""A small residual ConvNet image tower for 28x28 and 32x32 inputs (He et al. 2016, basic blocks).

stem conv3x3 (stride 2) -> ``depth`` stages, stage i with width * 2^i channels, one basic residual
block each (stride 1 for the first stage, 2 after) -> global average pool -> optional LayerNorm.
28x28 inputs run at 14x14, 7x7, 4x4 for depth 3; output dim width * 2^(depth-1).

Normalisation (``norm``): GroupNorm by default, which has no batch statistics, so a model
trained with DDP on N processes computes exactly what one process computes on the global batch,
and evaluation behaves like training. ``norm="batch"`` (BatchNorm; running statistics in eval
mode) learns much faster on MAD: 92.9% vs 79.8% zero-shot digit accuracy after the same 650
demo steps, and a 20% faster step. Under multi-GPU training it becomes SyncBatchNorm; on CPU
processes its statistics stay per rank.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _norm(channels: int, kind: str = "group") -> nn.Module:
    """GroupNorm with groups of up to 16 channels (8 groups at 128 channels), or BatchNorm."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    groups = max(1, channels // 16)
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels)


class BasicBlock(nn.Module):
    """relu(x' + conv-gn-relu-conv-gn(x)), x' = x or a 1x1 strided projection."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str = "group") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(c_out, norm)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = _norm(c_out, norm)
        nn.init.zeros_(self.norm2.weight)  # zero-init residual branch (Goyal et al. 2017)
        if stride != 1 or c_in != c_out:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), _norm(c_out, norm)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ConvNet(nn.Module):
    """Residual ConvNet: (B, C, H, W) -> (B, width * 2^(depth-1))."""

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 64,
        depth: int = 3,
        final_ln: bool = True,
        image_size: int = 28,
        stem_stride: int = 2,
        norm: str = "group",
    ) -> None:
        super().__init__()
        self.image_size = image_size
        # channels-last activations: oneDNN's convolutions run 10-30% faster on CPU in NHWC. Not
        # below 16 channels: with 8-channel NHWC activations torch 2.13's CPU backward corrupts the
        # heap (aborts about one run in two under MALLOC_CHECK_=3; tests/models/test_towers.py)
        self.channels_last = width >= 16
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=stem_stride, padding=1, bias=False),
            _norm(width, norm),
            nn.ReLU(inplace=True),
        )
        stages = []
        c = width
        for i in range(depth):
            c_out = width * 2**i
            stages.append(BasicBlock(c, c_out, stride=1 if i == 0 else 2, norm=norm))
            c = c_out
        self.stages = nn.Sequential(*stages)
        self.output_dim = c
        self.ln_post = nn.LayerNorm(c) if final_ln else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        x = self.stages(self.stem(images))
        return self.ln_post(x.mean(dim=(2, 3)))


__all__ = ["BasicBlock", "ConvNet"]
