"""Boolean attention masks: True = this key may be attended to.

Both masks broadcast against attention scores of shape (B, H, Sq, Sk), and
combine with ``&``:

    mask = padding_mask(lengths, S) & causal_mask(S)     # (B, 1, S, S)
    out, cache = attention_forward(q, k, v, mask)
"""

from __future__ import annotations

import numpy

from ..backend import array_module, get_array_module, is_cupy_array
from ..validation import ShapeError, check_array, check_positive_integer, describe


def causal_mask(seq_len, xp=None):
    """(S, S) bool, True where key j <= query i: a position sees itself and the past.

        seq_len = 3  ->  [[T, F, F],
                          [T, T, F],
                          [T, T, T]]
    xp: the array module to build it in (default: the current backend).
    """
    seq_len = check_positive_integer(seq_len, "seq_len")
    xp = xp or get_array_module()
    positions = xp.arange(seq_len)
    return positions[None, :] <= positions[:, None]


def padding_mask(lengths_or_bool, seq_len):
    """(B, 1, 1, S) bool, True = a real token that may be attended to.

    lengths_or_bool: either
        lengths (B,) integers in [0, S] -- the first lengths[b] positions of
            example b are real, the rest padding; a Python list goes to the
            current backend;
        or a (B, S) bool array, True = real token.
    The two singleton axes broadcast over heads H and queries Sq.

        padding_mask([2, 3], 3)[:, 0, 0]  ->  [[T, T, F],
                                               [T, T, T]]
    """
    seq_len = check_positive_integer(seq_len, "seq_len")
    value = lengths_or_bool
    if not (isinstance(value, numpy.ndarray) or is_cupy_array(value)):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"lengths_or_bool must be lengths (B,) of integers or a (B, S) bool array, "
                            f"got {describe(value)}")
        value = get_array_module().asarray(value)
    xp = array_module(value)
    if value.dtype.kind == "b":
        check_array(value, "lengths_or_bool (as a bool mask)", ndim=2)
        if value.shape[1] != seq_len:
            raise ShapeError(f"lengths_or_bool (as a bool mask) must have shape (B, S) with S = seq_len = "
                             f"{seq_len}, got {describe(value)}")
        return value[:, None, None, :]
    if value.dtype.kind not in "iu":
        raise TypeError(f"lengths_or_bool must be lengths (B,) of integers or a (B, S) bool array, "
                        f"got {describe(value)}")
    check_array(value, "lengths_or_bool (as lengths)", ndim=1)
    if value.size:
        low, high = int(xp.min(value)), int(xp.max(value))
        if low < 0 or high > seq_len:
            bad = low if low < 0 else high
            raise ShapeError(f"lengths_or_bool (as lengths) must lie in [0, seq_len] = [0, {seq_len}], "
                             f"got a length {bad}")
    positions = xp.arange(seq_len)
    return (positions[None, :] < value[:, None])[:, None, None, :]
