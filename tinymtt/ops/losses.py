"""The losses of the task heads and their weighted sum.

* ``cross_entropy``: token and sequence classification (masked mean over items)
* ``mse``: regression (masked mean over elements)
* ``weighted_sum``: the multi-task loss L = Σ_i w_i L_i

Each loss is a 0-d array of its input's dtype; its backward takes the scalar
upstream gradient ``dout`` (a 0-d array, a NumPy scalar or a Python float; 1.0 at the top).
A mask marks what counts (True = counts). When nothing counts the loss is 0
and every gradient is 0 -- a batch without a task's targets contributes
nothing, instead of 0/0 = NaN.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backend import array_module
from ..validation import (ShapeError, check_array, check_index_range, check_same_module, check_shape, describe,
                          scalar_upstream)
from .softmax import log_softmax_forward


def _check_mask(mask, shape, name="mask"):
    """A bool ``mask`` that broadcasts to ``shape`` (NumPy's rule: trailing axes align)."""
    check_array(mask, name, kind="bool")
    ok = mask.ndim <= len(shape) and all(m in (1, s) for m, s in zip(mask.shape[::-1], shape[::-1]))
    if not ok:
        raise ShapeError(f"{name} must broadcast to shape {tuple(shape)} (trailing axes align; "
                         f"add axes with {name}[..., None] where needed), got {describe(mask)}")
    return mask


# --- cross-entropy -----------------------------------------------------------

class CrossEntropyCache(NamedTuple):
    probs: object     # (..., C) softmax(logits)
    targets: object   # (...) class ids, 0 where the mask hides the item
    mask: object      # (...) bool, or None (every item counts)
    count: object     # number of counted items, at least 1 (a Python int or a 0-d array)


def cross_entropy_forward(logits, targets, mask=None):
    """Mean over counted items of −log softmax(logits)[target].

    logits: (..., C) float -- e.g. (B, S, C) for token classification, (B, C) per sequence
    targets: (...) integer class ids in [0, C); where ``mask`` is False they are
        ignored and may hold anything (e.g. −1 padding)
    mask: (...) bool, True = this item counts; None = every item counts
    returns loss: 0-d array of logits' dtype (0 when no item counts), cache

    Uses log-sum-exp (log_softmax), so huge logits give a finite loss.
    """
    check_array(logits, "logits", min_ndim=1, kind="float")
    check_array(targets, "targets", kind="int")
    check_same_module(logits=logits, targets=targets, mask=mask)
    classes = logits.shape[-1]
    if classes < 1:
        raise ShapeError(f"logits must have at least one class on its last axis (C), got {describe(logits)}")
    check_shape(targets, "targets", logits.shape[:-1], "logits' shape without C")
    xp = array_module(logits)
    if mask is None:
        count = max(targets.size, 1)
    else:
        check_array(mask, "mask", kind="bool")
        check_shape(mask, "mask", logits.shape[:-1], "logits' shape without C")
        targets = xp.where(mask, targets, 0)   # hidden items: any value, replaced by a valid id
        count = xp.maximum(mask.sum(dtype=logits.dtype), 1)
    check_index_range(targets, "targets", classes, "number of classes C =")
    log_probs, softmax_cache = log_softmax_forward(logits, axis=-1)
    picked = xp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]   # log p[target], (...)
    if mask is not None:
        picked = xp.where(mask, picked, 0)   # where, not ×: a hidden −inf must not become NaN
    loss = xp.asarray(0.0 - picked.sum() / count, dtype=logits.dtype)   # 0 − x, not −x: no item gives +0, not −0
    return loss, CrossEntropyCache(softmax_cache.probs, targets, mask, count)


def cross_entropy_backward(dout, cache: CrossEntropyCache):
    """Gradient of the masked mean cross-entropy.

    For one item with logits z and target t: −log softmax(z)_t = −z_t + log Σ_c exp(z_c),
    so ∂/∂z_c = p_c − [c = t]. The loss is (1/N) Σ_n m_n · (that), N = Σ_n m_n, so
        dlogits = dout · m ⊙ (softmax(logits) − onehot(targets)) / N
    (hidden items get 0; with N = 0 the whole gradient is 0).
    dout: scalar (0-d array or Python float)
    returns dlogits: (..., C)
    """
    probs = cache.probs
    xp = array_module(probs)
    scale = scalar_upstream(dout, probs.dtype, xp) / cache.count
    onehot = cache.targets[..., None] == xp.arange(probs.shape[-1])   # (..., C) bool
    dlogits = (probs - onehot) * scale
    if cache.mask is not None:
        dlogits = xp.where(cache.mask[..., None], dlogits, 0)   # where, not ×: NaN·0 is NaN
    return dlogits


# --- mean squared error -----------------------------------------------------

class MSECache(NamedTuple):
    diff: object      # (...) pred − target
    mask: object      # bool, broadcastable to diff's shape, or None
    count: object     # number of counted elements, at least 1


def mse_forward(pred, target, mask=None):
    """Mean over counted elements of (pred − target)².

    pred, target: (...) float, one shape and dtype -- e.g. (B, K) regression outputs
    mask: bool broadcastable to pred's shape (e.g. (B, 1) to hide whole examples),
        True = counts; None = every element counts. Targets at hidden elements
        are ignored (a missing target may be stored as NaN)
    returns loss: 0-d array of pred's dtype (0 when no element counts), cache
    """
    check_array(pred, "pred", kind="float")
    check_array(target, "target", kind="float")
    check_same_module(pred=pred, target=target, mask=mask)
    check_shape(target, "target", pred.shape, "pred's shape")
    if target.dtype != pred.dtype:
        raise TypeError(f"target must have pred's dtype {pred.dtype} (convert with .astype), got {describe(target)}")
    xp = array_module(pred)
    diff = pred - target
    squares = diff * diff
    if mask is None:
        count = max(pred.size, 1)
    else:
        _check_mask(mask, pred.shape)
        count = xp.maximum(xp.broadcast_to(mask, pred.shape).sum(dtype=pred.dtype), 1)
        squares = xp.where(mask, squares, 0)   # where, not ×: missing targets may be stored as NaN
    loss = xp.asarray(squares.sum() / count, dtype=pred.dtype)
    return loss, MSECache(diff, mask, count)


def mse_backward(dout, cache: MSECache):
    """Gradient of the masked mean squared error.

    L = (1/N) Σ m ⊙ (pred − target)², N = Σ m, so
        dpred = dout · 2 (pred − target) ⊙ m / N   (0 everywhere when N = 0)
    dout: scalar (0-d array or Python float)
    returns dpred: pred's shape
    """
    diff = cache.diff
    xp = array_module(diff)
    dpred = diff * (2 * scalar_upstream(dout, diff.dtype, xp) / cache.count)
    if cache.mask is not None:
        dpred = xp.where(cache.mask, dpred, 0)   # where, not ×: a NaN target at a hidden spot stays hidden
    return dpred


# --- weighted sum of task losses ------------------------------------------

class WeightedSumCache(NamedTuple):
    losses: object    # (T,)
    weights: object   # (T,)


def weighted_sum_forward(losses, weights):
    """The multi-task loss L = Σ_i w_i L_i.

    losses: (T,) float, one loss per task
    weights: (T,) float
    returns L: 0-d array, cache
    """
    check_array(losses, "losses", ndim=1, kind="float")
    check_array(weights, "weights", ndim=1, kind="float")
    check_same_module(losses=losses, weights=weights)
    if losses.shape != weights.shape:
        raise ShapeError(f"losses and weights must both have shape (T,), one entry per task: "
                         f"losses is a {describe(losses)}, weights is a {describe(weights)}")
    xp = array_module(losses)
    total = xp.asarray((weights * losses).sum())   # 0-d, in the inputs' dtype
    return total, WeightedSumCache(losses, weights)


def weighted_sum_backward(dout, cache: WeightedSumCache):
    """∂L/∂L_i = w_i and ∂L/∂w_i = L_i, so (dlosses, dweights) = (dout·w, dout·losses).

    The dweights are what learned weightings (uncertainty weighting) build on.
    dout: scalar (0-d array or Python float)
    returns (dlosses (T,), dweights (T,))
    """
    losses, weights = cache.losses, cache.weights
    xp = array_module(losses)
    scale = scalar_upstream(dout, xp.result_type(losses.dtype, weights.dtype), xp)
    return weights * scale, losses * scale
