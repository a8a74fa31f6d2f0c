"""Inverted dropout: zero each element with probability p, scale the rest by 1/(1−p)."""

from __future__ import annotations

from typing import NamedTuple

import numpy

from ..validation import check_array, check_probability, check_same_module


class DropoutCache(NamedTuple):
    mask: object   # (...) keep/(1−p) in x's dtype, or None when dropout was the identity


def dropout_forward(x, p, rng, train):
    """Inverted dropout.

    x: (...) any shape, floating point
    p: the probability of dropping an element, 0 <= p < 1
    rng: a generator with ``.random(shape, dtype=...)`` on x's device --
        ``tinymtt.backend.device_rng(seed)``; may be None when nothing is drawn
    train: bool. When False (evaluation), or when p == 0, dropout is the
        identity: out is x itself (no copy), no mask is drawn.
    returns out: same shape and dtype as x, cache

    In training, keep = (r >= p) with r uniform in [0, 1), so each element
    survives with probability 1−p; out = x·keep/(1−p), so E[out] = x and
    nothing needs rescaling at evaluation time.
    """
    check_array(x, "x", kind="float")
    p = check_probability(p, "p")
    if not isinstance(train, bool):
        raise TypeError(f"train must be a bool (True: training, drop; False: evaluation, identity), "
                        f"got {train!r}")
    if not train or p == 0.0:
        return x, DropoutCache(None)
    if rng is None:
        raise ValueError(f"rng is None, but dropout with p={p} in training mode needs a generator to draw "
                         f"its mask: pass tinymtt.backend.device_rng(seed)")
    if not callable(getattr(rng, "random", None)):
        raise TypeError(f"rng must be a generator with .random(shape, dtype=...) such as "
                        f"tinymtt.backend.device_rng(seed), got {type(rng).__name__}")
    # Generators draw float32 or float64 only; a float16 x draws in float32.
    draw_dtype = x.dtype if x.dtype.itemsize >= 4 else numpy.float32
    uniform = rng.random(x.shape, dtype=draw_dtype)
    check_same_module(x=x, rng=uniform)
    mask = (uniform >= p).astype(x.dtype) * (1.0 / (1.0 - p))   # stays in x's dtype
    return x * mask, DropoutCache(mask)


def dropout_backward(dout, cache: DropoutCache):
    """dx = dout · keep/(1−p): out_i = x_i·m_i with m fixed, so dx_i = dout_i·m_i.

    When the forward pass was the identity, dx is dout itself (no copy).
    """
    if cache.mask is None:
        return dout
    return dout * cache.mask
