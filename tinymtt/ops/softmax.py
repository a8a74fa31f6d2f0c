"""Softmax and log-softmax along one axis, numerically stable.

Both subtract the maximum along the axis first: softmax(x) = softmax(x − c)
for any constant c, and with c = max(x) every exponent is ≤ 0, so exp never
overflows and the largest term is exactly 1 (the sum never underflows to 0).
"""

from __future__ import annotations

from typing import NamedTuple

from ..backend import array_module
from ..validation import check_array, check_shape


class SoftmaxCache(NamedTuple):
    probs: object   # same shape as x: softmax(x) along `axis`
    axis: int


def _check_axis(axis, x) -> int:
    """``axis`` as a non-negative int, or a clear error naming it."""
    if isinstance(axis, bool) or not isinstance(axis, int) or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis must be an int in [{-x.ndim}, {x.ndim}) for x of shape {tuple(x.shape)}, "
                         f"got {axis!r}")
    axis = axis % x.ndim
    if x.shape[axis] < 1:
        raise ValueError(f"x must have at least one entry along axis {axis} (there is nothing to normalize), "
                         f"got shape {tuple(x.shape)}")
    return axis


def _check_upstream(dout, cache: SoftmaxCache):
    check_array(dout, "dout", kind="float")
    check_shape(dout, "dout", cache.probs.shape, "x's shape")


def softmax_forward(x, axis=-1):
    """p = exp(x − max x) / Σ exp(x − max x) along ``axis``.

    x: any shape, e.g. attention scores (B, H, S, S) with axis=-1. An entry of
        −inf gets probability 0 (that is how a mask is written); a slice holding
        +inf or NaN, or nothing but −inf, has no softmax and is a ValueError
        naming the first such entry.
    returns probs: the shape of x (each slice along ``axis`` sums to 1), cache
    """
    check_array(x, "x", min_ndim=1, kind="float")
    axis = _check_axis(axis, x)
    xp = array_module(x)
    row_max = x.max(axis=axis, keepdims=True)   # NaN, +inf or −inf exactly where a slice has no softmax
    if not bool(xp.isfinite(row_max).all()):
        _raise_non_finite(x, row_max, axis)
    shifted = x - row_max                        # every exponent ≤ 0: no overflow
    exps = xp.exp(shifted)
    probs = exps / exps.sum(axis=axis, keepdims=True)
    return probs, SoftmaxCache(probs, axis)


def _raise_non_finite(x, row_max, axis):
    """The ValueError for a slice without a softmax, naming its first bad entry."""
    xp = array_module(x)
    where = tuple(int(i) for i in xp.argwhere(~xp.isfinite(row_max))[0])   # the first such slice
    values = x[where[:axis] + (slice(None),) + where[axis + 1:]]
    if bool(xp.isneginf(row_max[where])):
        raise ValueError(f"x's slice at index {where[:axis] + ('…',) + where[axis + 1:]} along axis {axis} is "
                         f"all −inf: there is nothing to normalize")
    first = int(xp.flatnonzero(xp.isnan(values) | xp.isposinf(values))[0])
    position = where[:axis] + (first,) + where[axis + 1:]
    raise ValueError(f"x holds {float(x[position])} at index {position}: softmax needs finite inputs "
                     f"(−inf is allowed: it is how a mask is written)")


def softmax_backward(dout, cache: SoftmaxCache):
    """Gradient of p = softmax(x) along one axis.

    Within one slice, ∂p_i/∂x_j = p_i(δ_ij − p_j): the Jacobian is
    J = diag(p) − p pᵀ, symmetric. With upstream g = dL/dp:
        dx = Jᵀ g = p ⊙ g − p (pᵀ g) = p ⊙ (g − Σ_j g_j p_j)
    The −Σ term is what a hand-written backward most often forgets; with
    g = ones it is −1·p and cancels nothing visible, so check with a random g.
    returns dx: the shape of x
    """
    _check_upstream(dout, cache)
    probs = cache.probs
    dot = (dout * probs).sum(axis=cache.axis, keepdims=True)   # Σ_j g_j p_j per slice
    return probs * (dout - dot)


def log_softmax_forward(x, axis=-1):
    """out = x − logΣexp(x) along ``axis``, computed as (x − m) − log Σ exp(x − m), m = max x.

    x: any shape, e.g. logits (B, S, C) with axis=-1
    returns out: the shape of x (log-probabilities, all ≤ 0), cache
    """
    check_array(x, "x", min_ndim=1, kind="float")
    axis = _check_axis(axis, x)
    xp = array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    exps = xp.exp(shifted)
    sums = exps.sum(axis=axis, keepdims=True)       # ≥ 1 (the max term is exp(0)): log is finite
    out = shifted - xp.log(sums)
    return out, SoftmaxCache(exps / sums, axis)


def log_softmax_backward(dout, cache: SoftmaxCache):
    """Gradient of out = log softmax(x) along one axis.

    out_i = x_i − log Σ_k exp(x_k), so ∂out_i/∂x_j = δ_ij − p_j with p = softmax(x).
    With upstream g = dL/dout:
        dx_j = Σ_i g_i (δ_ij − p_j) = g_j − p_j Σ_i g_i
    returns dx: the shape of x
    """
    _check_upstream(dout, cache)
    probs = cache.probs
    return dout - probs * dout.sum(axis=cache.axis, keepdims=True)
