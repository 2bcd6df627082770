"""One optimizer step's gradients: a plain forward/backward, or k micro-batches that keep every
accumulated sample as a negative.

Accumulation (gradient caching, as open_clip's ``accum_freq`` intends): (1) encode all k
micro-batches without gradients and cache the points; (2) compute the loss once over the whole
cached set with the points as leaf tensors, backward -> d loss / d points and the gradients of the
parameters the loss uses directly (logit scale, curvature in the distance); (3) for each
micro-batch, recompute its points with gradients (same RNG state as in (1)) and backpropagate the
cached d loss / d points through the towers. The sum equals the gradient of one batch of k times
the size exactly (up to float rounding), unlike summing k full-set losses, which would count the
direct gradients of the logit scale and curvature k times.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

Autocast = Callable[[], AbstractContextManager[Any]]


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def plain_step(
    model: nn.Module, images: torch.Tensor, tokens: torch.Tensor, autocast: Autocast,
    parts: tuple[torch.Tensor, ...] = (),
) -> dict[str, Any]:
    """forward + backward of one batch (``parts``: box crops, box tokens and box_scene of a
    batch of scenes); returns the model's output dict (detached)."""
    with autocast():
        out = model(images, tokens, *parts)
    out["loss"].backward()
    return {k: (v.detach() if torch.is_tensor(v) else v) for k, v in out.items()}


def accumulated_step(
    model: nn.Module,
    images: torch.Tensor,
    tokens: torch.Tensor,
    k: int,
    autocast: Autocast,
) -> dict[str, Any]:
    """Gradients of the loss over the whole batch computed in ``k`` micro-batches (see module doc).

    ``model`` must expose ``encode_image``, ``encode_text`` and ``compute_loss``.
    """
    if k <= 1:
        return plain_step(model, images, tokens, autocast)
    device = images.device
    img_chunks = images.chunk(k)
    txt_chunks = tokens.chunk(k)
    states, img_cache, txt_cache = [], [], []
    with torch.no_grad():
        for img, txt in zip(img_chunks, txt_chunks, strict=True):
            states.append(_rng_state(device))
            with autocast():
                img_cache.append(model.encode_image(img).float())
                txt_cache.append(model.encode_text(txt).float())
    after = _rng_state(device)
    all_img = torch.cat(img_cache).requires_grad_(True)
    all_txt = torch.cat(txt_cache).requires_grad_(True)
    with autocast():
        out = model.compute_loss(all_img, all_txt)
    out["loss"].backward()
    img_grads = all_img.grad.split([c.shape[0] for c in img_cache])
    txt_grads = all_txt.grad.split([c.shape[0] for c in txt_cache])
    for j, (img, txt) in enumerate(zip(img_chunks, txt_chunks, strict=True)):
        _set_rng_state(states[j], device)
        with autocast():
            img_pts = model.encode_image(img)
            txt_pts = model.encode_text(txt)
        torch.autograd.backward(
            [img_pts, txt_pts], [img_grads[j].to(img_pts.dtype), txt_grads[j].to(txt_pts.dtype)]
        )
    _set_rng_state(after, device)
    return {k_: (v.detach() if torch.is_tensor(v) else v) for k_, v in out.items()}
