"""Image and text towers: shapes, pooling options, causality, end-token pooling."""

from __future__ import annotations

import pytest
import torch

from clipspace.config import ConfigError
from clipspace.models.convnet import ConvNet
from clipspace.models.text import TextTransformer, end_positions
from clipspace.models.vit import VisionTransformer, sincos_2d, vit_param_count


@pytest.mark.parametrize("pool", ["cls", "mean"])
@pytest.mark.parametrize("pos_embed", ["sincos", "learned"])
@pytest.mark.parametrize("final_ln", [True, False])
def test_vit_shapes(pool: str, pos_embed: str, final_ln: bool) -> None:
    torch.manual_seed(0)
    vit = VisionTransformer(28, 4, 32, 2, 2, pos_embed=pos_embed, pool=pool, final_ln=final_ln)
    out = vit(torch.randn(3, 3, 28, 28))
    assert out.shape == (3, 32)
    assert torch.isfinite(out).all()
    assert (vit.class_token is not None) == (pool == "cls")
    if final_ln:  # LayerNorm output: zero mean, unit variance per row
        assert torch.allclose(out.mean(-1), torch.zeros(3), atol=1e-5)
    learned = any("pos_embed" in n for n, _ in vit.named_parameters())
    assert learned == (pos_embed == "learned")


def test_vit_32px_and_bad_patch() -> None:
    vit = VisionTransformer(32, 8, 16, 1, 2)
    assert vit.num_patches == 16
    assert vit(torch.randn(2, 3, 32, 32)).shape == (2, 16)
    with pytest.raises(ConfigError, match="patch_size"):
        VisionTransformer(28, 5, 16, 1, 2)


def test_vit_param_count_formula() -> None:
    vit = VisionTransformer(32, 8, 24, 2, 2, pos_embed="learned", pool="cls")
    assert sum(p.numel() for p in vit.parameters()) == vit_param_count(32, 8, 24, 2, 4.0, 3)


def test_vit_mean_pool_is_permutation_invariant_without_positions() -> None:
    """Mean pooling: shuffling patches (and their positions) leaves the output unchanged."""
    torch.manual_seed(0)
    vit = VisionTransformer(8, 4, 16, 1, 2, pos_embed="learned", pool="mean").eval()
    with torch.no_grad():
        vit.pos_embed.zero_()
    img = torch.randn(1, 3, 8, 8)
    swapped = img.clone()
    swapped[..., :4, :4], swapped[..., 4:, 4:] = img[..., 4:, 4:], img[..., :4, :4]
    assert torch.allclose(vit(img), vit(swapped), atol=1e-5)
    assert not torch.allclose(vit(img), vit(torch.randn(1, 3, 8, 8)), atol=1e-3)


def test_sincos_positions_distinct_and_bounded() -> None:
    pos = sincos_2d(16, 7)
    assert pos.shape == (49, 16)
    assert pos.abs().max() <= 1.0
    assert torch.cdist(pos, pos).add(torch.eye(49)).min() > 1e-3  # all rows differ
    with pytest.raises(ConfigError, match="divisible by 4"):
        sincos_2d(18, 7)


@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("final_ln", [True, False])
def test_convnet_shapes(size: int, final_ln: bool) -> None:
    net = ConvNet(width=8, depth=3, final_ln=final_ln)
    assert net.output_dim == 32
    out = net(torch.randn(2, 3, size, size))
    assert out.shape == (2, 32)
    assert torch.isfinite(out).all()
    assert isinstance(net.ln_post, torch.nn.LayerNorm) == final_ln


def test_convnet_has_no_batch_statistics() -> None:
    """GroupNorm: a sample's output does not depend on the rest of the batch (DDP-safe)."""
    torch.manual_seed(0)
    net = ConvNet(width=8, depth=2).train()
    x = torch.randn(4, 3, 28, 28)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert torch.allclose(net(x)[:2], net(x[:2]), atol=1e-5)


def test_end_positions() -> None:
    tokens = torch.tensor(
        [
            [1, 5, 6, 2, 0, 0],  # eot at 3
            [1, 2, 7, 2, 0, 0],  # first eot
            [1, 5, 6, 7, 8, 0],  # no eot: last non-pad
            [0, 0, 0, 0, 0, 0],  # all padding: 0
        ]
    )
    assert end_positions(tokens, 2).tolist() == [3, 1, 4, 0]
    assert end_positions(tokens, None).tolist() == [3, 3, 4, 0]


def _text(final_ln: bool = True) -> TextTransformer:
    torch.manual_seed(0)
    return TextTransformer(50, 8, 32, 2, 2, final_ln=final_ln, eot_id=2).eval()


def test_text_is_causal() -> None:
    """Changing token k changes the hidden states at positions >= k only."""
    tower = _text()
    tokens = torch.tensor([[1, 10, 11, 12, 13, 14, 2, 0]])
    changed = tokens.clone()
    changed[0, 4] = 30
    with torch.no_grad():
        h1 = tower.transformer(tower.token_embedding(tokens) + tower.pos_embed)
        h2 = tower.transformer(tower.token_embedding(changed) + tower.pos_embed)
    diff = (h1 - h2).abs().amax(-1)[0]
    assert torch.all(diff[:4] == 0)
    assert torch.all(diff[4:] > 1e-4)


def test_text_pools_at_end_token() -> None:
    tower = _text()
    a = torch.tensor([[1, 10, 11, 2, 0, 0, 0, 0]])
    b = torch.tensor([[1, 10, 11, 2, 33, 44, 5, 9]])  # junk after EOT
    c = torch.tensor([[1, 10, 12, 2, 0, 0, 0, 0]])  # different content before EOT
    with torch.no_grad():
        fa, fb, fc = tower(a), tower(b), tower(c)
        h = tower.transformer(tower.token_embedding(a) + tower.pos_embed)
    assert fa.shape == (1, 32)
    assert torch.allclose(fa, fb, atol=1e-6)
    assert not torch.allclose(fa, fc, atol=1e-4)
    assert torch.allclose(fa, tower.ln_final(h[:, 3]), atol=1e-6)


def test_text_shorter_input_and_too_long() -> None:
    tower = _text(final_ln=False)
    assert isinstance(tower.ln_final, torch.nn.Identity)
    full = torch.tensor([[1, 10, 11, 2, 0, 0, 0, 0]])
    with torch.no_grad():
        assert torch.allclose(tower(full), tower(full[:, :4]), atol=1e-6)
    with pytest.raises(ConfigError, match="context_length"):
        tower(torch.ones(1, 9, dtype=torch.long))


def test_convnet_stem_stride_keeps_resolution():
    import torch

    from clipspace.models.convnet import ConvNet

    fast, full = ConvNet(width=8, depth=2, stem_stride=2), ConvNet(width=8, depth=2, stem_stride=1)
    x = torch.randn(2, 3, 28, 28)
    assert fast.stem(x).shape[-1] == 14 and full.stem(x).shape[-1] == 28
    assert fast(x).shape == full(x).shape == (2, 16)


@pytest.mark.parametrize("causal", [False, True])
def test_pooled_last_block_equals_full_block_then_select(causal: bool) -> None:
    """Transformer(pool_index=i) gives the full forward's row i, values and gradients (float64)."""
    from clipspace.models.vit import Transformer

    torch.manual_seed(0)
    t = Transformer(32, 3, 4, causal=causal).double()
    for p in t.parameters():  # non-trivial weights everywhere (biases included)
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(6, 9, 32, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([0, 3, 8, 5, 0, 1])
    full = t(x)[torch.arange(6), index]
    pooled = t(x, pool_index=index)
    torch.testing.assert_close(pooled, full, rtol=0, atol=1e-12)
    weights = torch.randn_like(full)
    g_full = torch.autograd.grad((full * weights).sum(), [x, *t.parameters()])
    g_pool = torch.autograd.grad((pooled * weights).sum(), [x, *t.parameters()])
    for a, b in zip(g_full, g_pool):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-11)


def test_vit_cls_pooling_matches_full_transformer() -> None:
    torch.manual_seed(0)
    vit = VisionTransformer(image_size=28, patch_size=7, width=32, depth=2, heads=2).double()
    images = torch.randn(3, 3, 28, 28, dtype=torch.float64)
    x = vit.patch_embed(images).flatten(2).transpose(1, 2)
    x = torch.cat([vit.class_token.expand(3, 1, -1), x], dim=1)
    x = vit.ln_pre(x + vit.pos_embed.to(x.dtype))
    expected = vit.ln_post(vit.transformer(x)[:, 0])
    torch.testing.assert_close(vit(images), expected, rtol=0, atol=1e-12)


def test_text_batch_cut_to_longest_caption_changes_nothing() -> None:
    """Padding columns after every row's end token are dropped; the features are unchanged."""
    torch.manual_seed(0)
    tower = TextTransformer(vocab_size=50, context_length=16, width=32, depth=2, heads=2,
                            eot_id=2).double()
    tokens = torch.zeros(3, 16, dtype=torch.long)
    tokens[0, :4] = torch.tensor([1, 7, 9, 2])
    tokens[1, :6] = torch.tensor([1, 5, 5, 8, 3, 2])
    tokens[2, :3] = torch.tensor([1, 4, 2])
    short = tower(tokens[:, :6])
    torch.testing.assert_close(tower(tokens), short, rtol=0, atol=1e-12)
    # reference: every block on the full 16 positions, then the end token
    x = tower.token_embedding(tokens) + tower.pos_embed
    x = tower.transformer(x)
    ref = tower.ln_final(x[torch.arange(3), end_positions(tokens, 2)])
    torch.testing.assert_close(tower(tokens), ref, rtol=0, atol=1e-12)


def test_convnet_batch_norm_option() -> None:
    """norm="batch": BatchNorm layers; in eval mode a sample's output is batch-independent, and
    training mode updates the running statistics that eval mode then uses."""
    from clipspace.config import resolve
    from clipspace.models import create_model

    torch.manual_seed(0)
    net = ConvNet(width=8, depth=2, norm="batch")
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 6  # stem; 2 in block 1; 2 + the shortcut in block 2
    x = torch.randn(6, 3, 28, 28) * 3 + 1
    before = bns[0].running_mean.clone()
    net.train()(x)
    assert not torch.equal(bns[0].running_mean, before)
    net.eval()
    torch.testing.assert_close(net(x)[:2], net(x[:2]), rtol=0, atol=1e-6)
    model = create_model(resolve("clip", {"model.name": "mad-tiny", "model.image.norm": "batch"}))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.visual.modules())
    with pytest.raises(ConfigError, match="model.image.norm"):
        resolve("clip", {"model.image.norm": "layer"})


NARROW_CONVNET_SCRIPT = """
import torch
from clipspace.models.convnet import ConvNet
torch.set_num_threads(2)
torch.manual_seed(0)
net = ConvNet(width=8, depth=3)
for _ in range(6):
    net(torch.randn(5, 3, 28, 28)).square().sum().backward()
print("ok")
"""


def test_narrow_convnet_stays_nchw_and_keeps_the_heap_intact() -> None:
    """Below 16 channels the ConvNet keeps NCHW: torch 2.13's CPU backward with 8-channel NHWC
    activations corrupted the heap with two threads (glibc aborts under MALLOC_CHECK_=3 about one
    process in two after one pass; with NHWC forced, these 6 passes failed 8 processes of 8)."""
    import os
    import subprocess
    import sys

    assert not ConvNet(width=8).channels_last and ConvNet(width=16).channels_last
    env = {**os.environ, "MALLOC_CHECK_": "3", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, "-c", NARROW_CONVNET_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr)
