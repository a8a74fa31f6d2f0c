"""Scaled dot-product attention: out = dropout(softmax(q·kᵀ/√Dh, masked))·v."""

from __future__ import annotations

import math
from typing import NamedTuple

from ..backend import array_module, blockwise
from ..validation import ShapeError, check_array, check_probability, check_same_module, describe


class AttentionCache(NamedTuple):
    q: object        # (B, H, Sq, Dh)
    k: object        # (B, H, Sk, Dh)
    v: object        # (B, H, Sk, Dv)
    weights: object  # (B, H, Sq, Sk) post-softmax, pre-dropout (plot these); 0 where masked
    keep: object     # (B, H, Sq, Sk) bool dropout mask, or None without dropout
    dropout_scale: float  # 1 / (1 - dropout_p): inverted dropout keeps the expectation
    scale: float     # 1 / √Dh


def _check_inputs(q, k, v, mask):
    for name, a in (("q", q), ("k", k), ("v", v)):
        check_array(a, name, min_ndim=2, kind="float")
    check_same_module(q=q, k=k, v=v, mask=mask)
    shapes = f"q {describe(q)}, k {describe(k)}, v {describe(v)}"
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k and v must share one dtype, got {shapes}")
    if not (q.ndim == k.ndim == v.ndim) or not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ShapeError(f"q, k and v must share their leading axes (B, H, ...), got {shapes}")
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"q and k must have the same head width Dh (last axis), got {shapes}")
    if k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"k and v must have the same number of keys Sk (second-to-last axis), got {shapes}")
    scores_shape = q.shape[:-1] + (k.shape[-2],)
    if mask is not None:
        check_array(mask, "mask", kind="bool")
        fits = mask.ndim <= len(scores_shape) and all(
            m in (1, s) for m, s in zip(mask.shape[::-1], scores_shape[::-1]))
        if not fits:
            raise ShapeError(f"mask must broadcast to the attention scores (B, H, Sq, Sk) = {scores_shape}, "
                             f"got {describe(mask)}")
    return scores_shape


def attention_forward(q, k, v, mask=None, dropout_p=0.0, rng=None):
    """Scaled dot-product attention over the keys, per head.

    q: (B, H, Sq, Dh) queries; k: (B, H, Sk, Dh) keys; v: (B, H, Sk, Dv) values
        (any leading axes, as long as q, k and v share them)
    mask: bool, broadcastable to (B, H, Sq, Sk), True = may attend; or None
    dropout_p: inverted dropout rate on the attention weights (train mode)
    rng: a generator with ``.random(shape, dtype=...)``, e.g.
        tinymtt.backend.device_rng(seed); required when dropout_p > 0

        scores = q·kᵀ / √Dh                      (B, H, Sq, Sk)
        A      = softmax over keys of the allowed scores (masked -> weight 0)
        out    = (A ⊙ keep / (1 - p))·v          (B, H, Sq, Dv)

    A query row with no allowed key gets weights 0 and output 0, never NaN.
    returns out, cache (cache.weights is A, for plotting)
    """
    scores_shape = _check_inputs(q, k, v, mask)
    dropout_p = check_probability(dropout_p, "dropout_p")
    if dropout_p > 0 and rng is None:
        raise ValueError(f"rng must be given when dropout_p > 0 (got dropout_p = {dropout_p}, rng = None); "
                         f"pass e.g. tinymtt.backend.device_rng(seed)")
    xp = array_module(q)
    scale = 1.0 / math.sqrt(q.shape[-1])
    bias = None
    if mask is not None:
        # Masked scores become -inf, so exp() makes them exactly 0 (no overflow warning).
        # The bias (0 or -inf) has the mask's shape, usually small: (B, 1, 1, Sk).
        bias = xp.where(mask, xp.zeros((), dtype=q.dtype), xp.asarray(-xp.inf, dtype=q.dtype))
        bias = bias.reshape((1,) * (len(scores_shape) - bias.ndim) + bias.shape)   # as many axes as the scores
        # one bias row per example, for the blocks below (a view: broadcast_to copies nothing)
        bias = xp.broadcast_to(bias, q.shape[:1] + bias.shape[1:]) if q.ndim > 2 else bias[None]
    keep, dropout_scale = None, 1.0
    if dropout_p > 0:
        if not callable(getattr(rng, "random", None)):
            raise TypeError(f"rng must be a generator with .random(shape, dtype=...) such as "
                            f"tinymtt.backend.device_rng(seed), got {type(rng).__name__}")
        # Generators draw float32 or float64 only; a float16 input draws in float32.
        uniform = rng.random(scores_shape, dtype=q.dtype if q.dtype.itemsize >= 4 else "float32")
        check_same_module(q=q, rng=uniform)
        keep = uniform >= dropout_p
        dropout_scale = 1.0 / (1.0 - dropout_p)
    weights = xp.empty(scores_shape, dtype=q.dtype)
    out = xp.empty(q.shape[:-1] + (v.shape[-1],), dtype=q.dtype)
    # Every (example, head) is independent: the work runs in blocks of examples (axis 0), on every core.
    batched = [a if a is None or q.ndim > 2 else a[None] for a in (q, k, v, keep, weights, out)]
    blockwise(_attention_forward_kernel, *batched[:3], bias, *batched[3:], whole=(scale, dropout_scale))
    return out, AttentionCache(q, k, v, weights, keep, dropout_scale, scale)


def _attention_forward_kernel(q, k, v, bias, keep, weights, out, scale, dropout_scale):
    """The forward on a block of examples; writes the weights and the output."""
    xp = array_module(q)
    # The scores live in ``weights``: every step below updates them in place,
    # so the softmax makes no further arrays of that size.
    scores = xp.matmul(q, xp.swapaxes(k, -1, -2), out=weights)
    scores *= scale
    if bias is not None:
        scores += bias
    # Stable softmax: subtract the row max over the allowed entries; a row with
    # none allowed has max -inf, replaced by 0 so that -inf - max stays -inf.
    row_max = xp.max(scores, axis=-1, keepdims=True)
    row_max = xp.where(xp.isfinite(row_max), row_max, xp.zeros((), dtype=scores.dtype))
    scores -= row_max
    xp.exp(scores, out=scores)
    denominator = xp.einsum("...k->...", scores)[..., None]   # Σ over keys; einsum sums a short axis fast
    # >= 1 on a row with any allowed key (its max contributes exp(0) = 1); 0 on an
    # all-masked row, where dividing by 1 instead leaves the zeros as they are.
    denominator = xp.where(denominator == 0, xp.ones((), dtype=scores.dtype), denominator)
    scores /= denominator                                     # now the weights A
    dropped = weights if keep is None else weights * keep * dropout_scale
    xp.matmul(dropped, v, out=out)


def attention_backward(dout, cache: AttentionCache):
    """Gradients of attention with respect to q, k and v.

    Per head, with A the weights, Ã = A ⊙ keep/(1-p) the dropped weights
    (Ã = A without dropout), s = 1/√Dh and out = Ã·v:
        dv = Ãᵀ·dout                          -- out_i = Σ_j Ã_ij v_j
        dÃ = dout·vᵀ;  dA = dÃ ⊙ keep/(1-p)   -- through the dropout mask
        dscores = A ⊙ (dA − Σ_k dA⊙A)         -- softmax backward, row by row:
                  ∂A_ij/∂z_il = A_ij(δ_jl − A_il); masked entries have A = 0,
                  so their score gradient is 0 (and a fully masked row's too)
        dq = s · dscores·k                    -- scores = s · q·kᵀ
        dk = s · dscoresᵀ·q
    dout: (B, H, Sq, Dv)
    returns (dq (B, H, Sq, Dh), dk (B, H, Sk, Dh), dv (B, H, Sk, Dv))
    """
    q, k, v, weights = cache.q, cache.k, cache.v, cache.weights
    xp = array_module(dout)
    out_shape = q.shape[:-1] + (v.shape[-1],)
    if tuple(dout.shape) != tuple(out_shape):
        raise ShapeError(f"dout must have the output's shape (B, H, Sq, Dv) = {tuple(out_shape)}, "
                         f"got {describe(dout)}")
    dq, dk, dv = (xp.empty(a.shape, dtype=a.dtype) for a in (q, k, v))
    arrays = [dout, q, k, v, weights, cache.keep, dq, dk, dv]
    batched = [a if a is None or q.ndim > 2 else a[None] for a in arrays]
    blockwise(_attention_backward_kernel, *batched, whole=(cache.scale, cache.dropout_scale))
    return dq, dk, dv


def _attention_backward_kernel(dout, q, k, v, weights, keep, dq, dk, dv, scale, dropout_scale):
    """The backward on a block of examples; writes dq, dk and dv."""
    xp = array_module(dout)
    dropped = weights if keep is None else weights * keep * dropout_scale
    xp.matmul(xp.swapaxes(dropped, -1, -2), dout, out=dv)
    dweights = dout @ xp.swapaxes(v, -1, -2)          # fresh: updated in place below
    if keep is not None:
        dweights *= keep
        dweights *= dropout_scale
    # Σ_k dA_ik A_ik per row, as an einsum: no (B, H, Sq, Sk) product array
    row_dot = xp.einsum("...k,...k->...", dweights, weights)[..., None]
    dscores = dweights
    dscores -= row_dot
    dscores *= weights
    xp.matmul(dscores, k, out=dq)
    dq *= scale
    xp.matmul(xp.swapaxes(dscores, -1, -2), q, out=dk)
    dk *= scale
