"""Memory-bounded contrastive losses: InfoNCE and SigLIP over a B x N logit matrix in row chunks.

The full B x N logit matrix is never formed: every function here sees the logits only as
``logit_fn(rows, cols, *params) -> (r, N)`` on ``r <= chunk`` rows at a time, so peak memory is
O(chunk x N) (plus O(B + N) statistics), whatever the logit (cosine, dot, -d, -d^2, <,>_L, the
ATMG exterior angles): ``logit_fn`` must be row-wise (row i of its output depends on row i of
``rows`` only), which every pairwise logit is. ``params`` are the tensors ``logit_fn`` reads
besides the points (logit scale, curvature, ...): they are passed explicitly so that their
gradients are returned (floats pass through untouched).

- ``chunked_infonce`` without a separate text->image logit: the square symmetric InfoNCE
  (logits_per_text = L^T). The forward pass accumulates the row log-sum-exps lse_r (B,) and an
  online column log-sum-exp lse_c (N,) over the chunks; a custom autograd Function's backward
  recomputes each chunk's logits and pushes

      dLoss/dL_ij = (softmax_row_ij + softmax_col_ij - [j = y_i] - [i = y_j]) / (2B),
      softmax_row_ij = exp(L_ij - lse_r_i),  softmax_col_ij = exp(L_ij - lse_c_j),

  through ``torch.autograd.grad`` of that chunk's ``logit_fn`` (docs/reference.md).
- ``chunked_infonce`` with ``logit_fn_t`` / ``txt_rows`` / ``img_cols`` (ATMG's angle logits,
  distributed local loss): the two cross-entropies are separate matrices, each a sum over rows;
- ``chunked_siglip``: a sum of softplus over rows.

Row-separable sums need no second pass: a custom autograd Function computes, chunk by chunk, the
chunk's value and (when an input needs a gradient) its gradients at once (``torch.autograd.grad``
of the chunk, whose graph is then dropped), and its backward only scales the summed gradients by
the incoming gradient: one forward and one backward of the logits, like the unchunked loss
(``torch.utils.checkpoint`` per chunk would recompute every chunk's forward a second time).
Like every loss, all of this computes in float32 (float64 kept) with autocast off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from clipspace.geometry import geometry_fn

#: logit_fn(rows (r, D), cols (N, D), *params) -> (r, N) logits (already scaled), row-wise
LogitFn = Callable[..., Tensor]
Param = Tensor | float


def _check_chunk(chunk: int) -> None:
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int (rows per chunk), got {chunk!r}")


def _spans(n: int, chunk: int) -> Iterator[tuple[int, int]]:
    """[start, stop) row ranges of at most ``chunk`` rows covering 0..n."""
    for start in range(0, n, chunk):
        yield start, min(start + chunk, n)


def _params(params: Sequence[Param], like: Tensor) -> tuple[Param, ...]:
    """Floating tensor params in the working dtype of the points (as ``geometry_fn`` casts its
    own arguments): one cast node per param, so the chunks' gradients are summed in that dtype
    before they reach the param."""
    return tuple(p.to(like.dtype) if isinstance(p, Tensor) and p.is_floating_point() else p
                 for p in params)


def _labels(labels: Tensor | None, n: int, like: Tensor) -> Tensor:
    if labels is None:
        return torch.arange(n, device=like.device)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    return labels.to(device=like.device, dtype=torch.long)


@contextlib.contextmanager
def _no_autocast() -> Iterator[None]:
    """Autocast off on CPU and CUDA (the backward pass may run inside a user's autocast)."""
    with contextlib.ExitStack() as stack:
        for dev in ("cpu", "cuda"):
            stack.enter_context(torch.autocast(device_type=dev, enabled=False))
        yield


# --- square symmetric InfoNCE: row and column log-sum-exps, custom backward ----------------------


class _SymmetricInfoNCE(torch.autograd.Function):
    """(CE(L, y) + CE(L^T, y)) / 2 of the square L = logit_fn(img, txt, *params), by chunks."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, logit_fn: LogitFn, chunk: int, labels: Tensor, img: Tensor, txt: Tensor,
        *params: Param,
    ) -> Tensor:
        b = img.shape[0]
        row_lse = img.new_empty(b)
        col_lse = img.new_full((txt.shape[0],), float("-inf"))
        pos = img.new_zeros(())
        for r0, r1 in _spans(b, chunk):
            logits = logit_fn(img[r0:r1], txt, *params)
            row_lse[r0:r1] = torch.logsumexp(logits, dim=1)
            col_lse = torch.logaddexp(col_lse, torch.logsumexp(logits, dim=0))
            pos = pos + logits.gather(1, labels[r0:r1, None]).sum()  # L_{i, y_i}
            cols = _columns_in(labels, r0, r1)
            pos = pos + logits[labels[cols] - r0, cols].sum()  # L_{y_j, j}
        ctx.logit_fn, ctx.chunk = logit_fn, chunk
        ctx.slots = [None if isinstance(p, Tensor) else p for p in params]
        tensors = [p for p in params if isinstance(p, Tensor)]
        ctx.save_for_backward(labels, img, txt, row_lse, col_lse, *tensors)
        return (row_lse.sum() + col_lse.sum() - pos) / (2 * b)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        labels, img, txt, row_lse, col_lse, *tensors = ctx.saved_tensors
        it = iter(tensors)
        params = [next(it) if slot is None else slot for slot in ctx.slots]
        need = ctx.needs_input_grad
        need_img, need_txt = need[3], need[4]
        need_p = [isinstance(p, Tensor) and n for p, n in zip(params, need[5:], strict=True)]
        g_img = torch.zeros_like(img) if need_img else None
        g_txt = torch.zeros_like(txt) if need_txt else None
        g_p: list[Tensor | None] = [torch.zeros_like(p) if n else None
                                    for p, n in zip(params, need_p, strict=True)]
        factor = grad / (2 * img.shape[0])
        txt_leaf = txt.detach().requires_grad_(need_txt)
        p_leaf = [p.detach().requires_grad_(n) if isinstance(p, Tensor) else p
                  for p, n in zip(params, need_p, strict=True)]
        wrt_p = [p for p, n in zip(p_leaf, need_p, strict=True) if n]
        if not (need_img or need_txt or wrt_p):
            return (None, None, None, None, None, *g_p)
        for r0, r1 in _spans(img.shape[0], ctx.chunk):
            rows = img[r0:r1].detach().requires_grad_(need_img)
            with torch.enable_grad(), _no_autocast():
                logits = ctx.logit_fn(rows, txt_leaf, *p_leaf)
            with torch.no_grad():
                g = torch.exp(logits - row_lse[r0:r1, None]) + torch.exp(logits - col_lse)
                r = torch.arange(r1 - r0, device=g.device)
                g[r, labels[r0:r1]] -= 1.0
                cols = _columns_in(labels, r0, r1)
                g[labels[cols] - r0, cols] -= 1.0
                g = g * factor
            wrt = ([rows] if need_img else []) + ([txt_leaf] if need_txt else []) + wrt_p
            grads = list(torch.autograd.grad(logits, wrt, g, allow_unused=True))
            if need_img:
                assert g_img is not None
                part = grads.pop(0)
                if part is not None:
                    g_img[r0:r1] = part
            if need_txt:
                assert g_txt is not None
                part = grads.pop(0)
                if part is not None:
                    g_txt += part
            for k, n in enumerate(need_p):
                if n:
                    part = grads.pop(0)
                    acc = g_p[k]
                    if part is not None and acc is not None:
                        acc += part
        return (None, None, None, g_img, g_txt, *g_p)


def _columns_in(labels: Tensor, r0: int, r1: int) -> Tensor:
    """Columns j whose positive row y_j lies in [r0, r1)."""
    return torch.nonzero((labels >= r0) & (labels < r1), as_tuple=True)[0]


# --- row-separable sums: value and gradients chunk by chunk ------------------------------------


def _ce_rows(logit_fn: LogitFn, rows: Tensor, cols: Tensor, labels: Tensor,
             *params: Param) -> Tensor:
    """sum_i (logsumexp_j L_ij - L_{i, y_i}) over the given rows."""
    logits = logit_fn(rows, cols, *params)
    return (torch.logsumexp(logits, dim=1) - logits.gather(1, labels[:, None])[:, 0]).sum()


def _siglip_rows(logit_fn: LogitFn, rows: Tensor, cols: Tensor, labels: Tensor, bias: Param,
                 *params: Param) -> Tensor:
    """sum_ij softplus(z_ij) - sum_i z_{i, y_i},  z = L + bias, over the given rows."""
    z = logit_fn(rows, cols, *params) + bias
    return F.softplus(z).sum() - z.gather(1, labels[:, None]).sum()


def _siglip_negative_rows(logit_fn: LogitFn, rows: Tensor, cols: Tensor, labels: Tensor,
                          bias: Param, *params: Param) -> Tensor:
    """sum_ij softplus(z_ij),  z = L + bias: every pair a negative (labels unused)."""
    del labels
    return F.softplus(logit_fn(rows, cols, *params) + bias).sum()


class _RowSum(torch.autograd.Function):
    """sum over row chunks of ``fn(logit_fn, rows[chunk], cols, labels[chunk], *params)``.

    The forward pass evaluates each chunk with autograd on and takes that chunk's gradients
    with respect to every input that needs one right away (the chunk's graph is freed before the
    next chunk), summing them; the backward pass returns them times the incoming gradient. Peak
    memory: one chunk's graph plus gradients the size of the inputs.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, fn: Callable[..., Tensor], logit_fn: LogitFn, chunk: int, labels: Tensor,
        rows: Tensor, cols: Tensor, *params: Param,
    ) -> Tensor:
        need = ctx.needs_input_grad
        need_rows, need_cols = need[4], need[5]
        need_p = [isinstance(p, Tensor) and n for p, n in zip(params, need[6:], strict=True)]
        total = rows.new_zeros(())
        g_rows = torch.zeros_like(rows) if need_rows else None
        g_cols = torch.zeros_like(cols) if need_cols else None
        g_p: list[Tensor | None] = [torch.zeros_like(p) if n else None  # type: ignore[arg-type]
                                    for p, n in zip(params, need_p, strict=True)]
        cols_leaf = cols.detach().requires_grad_(need_cols)
        p_leaf = [p.detach().requires_grad_(n) if isinstance(p, Tensor) else p
                  for p, n in zip(params, need_p, strict=True)]
        wrt_p = [p for p, n in zip(p_leaf, need_p, strict=True) if n]
        for r0, r1 in _spans(rows.shape[0], chunk):
            part_rows = rows[r0:r1].detach().requires_grad_(need_rows)
            wrt = ([part_rows] if need_rows else []) + ([cols_leaf] if need_cols else []) + wrt_p
            with torch.set_grad_enabled(bool(wrt)):
                value = fn(logit_fn, part_rows, cols_leaf, labels[r0:r1], *p_leaf)
            total = total + value.detach()
            if not wrt:
                continue
            grads = list(torch.autograd.grad(value, wrt, allow_unused=True))
            if g_rows is not None:
                part = grads.pop(0)
                if part is not None:
                    g_rows[r0:r1] = part
            if g_cols is not None:
                part = grads.pop(0)
                if part is not None:
                    g_cols += part
            for k, n in enumerate(need_p):
                if n:
                    part, acc = grads.pop(0), g_p[k]
                    if part is not None and acc is not None:
                        acc += part
        ctx.grads = (g_rows, g_cols, *g_p)
        return total

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        scaled = tuple(None if g is None else g * grad for g in ctx.grads)
        del ctx.grads
        return (None, None, None, None, *scaled)


def _row_sum(fn: Callable[..., Tensor], logit_fn: LogitFn, rows: Tensor, cols: Tensor,
             labels: Tensor, chunk: int, extra: Sequence[Param]) -> Tensor:
    """sum over chunks of fn(logit_fn, rows[chunk], cols, labels[chunk], *extra) (``_RowSum``;
    gradients are taken only where autograd records and an input needs one)."""
    if not torch.is_grad_enabled():
        total = rows.new_zeros(())
        for r0, r1 in _spans(rows.shape[0], chunk):
            total = total + fn(logit_fn, rows[r0:r1], cols, labels[r0:r1], *extra)
        return total
    return _RowSum.apply(fn, logit_fn, chunk, labels, rows, cols, *extra)


@geometry_fn
def chunked_cross_entropy(
    logit_fn: LogitFn,
    rows: Tensor,
    cols: Tensor,
    chunk: int,
    labels: Tensor | None = None,
    params: Sequence[Param] = (),
) -> Tensor:
    """CE(L, y) = mean_i (logsumexp_j L_ij - L_{i, y_i}),  L = logit_fn(rows, cols, *params),
    in row chunks of ``chunk`` rows (``_RowSum``); ``labels`` default arange(B)."""
    _check_chunk(chunk)
    y = _labels(labels, rows.shape[0], rows)
    return _row_sum(_ce_rows, logit_fn, rows, cols, y, chunk, _params(params, rows)) / rows.shape[0]


@geometry_fn
def chunked_infonce(
    logit_fn: LogitFn,
    img: Tensor,
    txt: Tensor,
    chunk: int,
    labels: Tensor | None = None,
    params: Sequence[Param] = (),
    logit_fn_t: LogitFn | None = None,
    txt_rows: Tensor | None = None,
    img_cols: Tensor | None = None,
) -> Tensor:
    """``infonce(L, labels, L_t)`` without forming L:  (CE(L, y) + CE(L_t, y)) / 2 with
    L = logit_fn(img, txt, *params) (B, N).

    Without ``logit_fn_t``, ``txt_rows`` and ``img_cols``: the square case L_t = L^T (B = N),
    by row and online column log-sum-exps and the custom backward of the module docstring.
    Otherwise L_t = logit_fn_t(txt_rows, img_cols, *params) (each defaulting to ``logit_fn``,
    ``txt``, ``img``), e.g. ATMG's -s ext(t_i, v_j) or the distributed local loss (local rows
    against gathered columns); then both terms are chunked row sums.
    """
    _check_chunk(chunk)
    params = _params(params, img)
    y = _labels(labels, img.shape[0], img)
    if logit_fn_t is None and txt_rows is None and img_cols is None:
        if img.shape[0] != txt.shape[0]:
            raise ValueError(
                f"square InfoNCE needs as many texts as images, got {img.shape[0]} and "
                f"{txt.shape[0]}; pass txt_rows / img_cols for the rectangular case"
            )
        return _SymmetricInfoNCE.apply(logit_fn, chunk, y, img, txt, *params)
    fn_t = logit_fn if logit_fn_t is None else logit_fn_t
    t_rows = txt if txt_rows is None else txt_rows
    i_cols = img if img_cols is None else img_cols
    yt = _labels(labels, t_rows.shape[0], t_rows)
    ce_i = _row_sum(_ce_rows, logit_fn, img, txt, y, chunk, params) / img.shape[0]
    ce_t = _row_sum(_ce_rows, fn_t, t_rows, i_cols, yt, chunk, params) / t_rows.shape[0]
    return (ce_i + ce_t) / 2


@geometry_fn
def chunked_siglip(
    logit_fn: LogitFn,
    img: Tensor,
    txt: Tensor,
    bias: Param,
    chunk: int,
    labels: Tensor | None = None,
    params: Sequence[Param] = (),
    positives: bool = True,
) -> Tensor:
    """``siglip(L, bias, labels, positives)`` without forming L = logit_fn(img, txt, *params):
    (sum_ij softplus(z_ij) - sum_i z_{i, y_i}) / B,  z = L + bias, by row chunks
    (``positives=False``: sum_ij softplus(z_ij) / B)."""
    _check_chunk(chunk)
    y = _labels(labels, img.shape[0], img)
    extra = _params((bias, *params), img)
    rows_fn = _siglip_rows if positives else _siglip_negative_rows
    return _row_sum(rows_fn, logit_fn, img, txt, y, chunk, extra) / img.shape[0]


__all__ = ["LogitFn", "chunked_cross_entropy", "chunked_infonce", "chunked_siglip"]
