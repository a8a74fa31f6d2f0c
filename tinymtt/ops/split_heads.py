"""Splitting the model width into attention heads, and merging them back.

    split:  (B, S, D)  -> reshape (B, S, H, Dh) -> transpose -> (B, H, S, Dh)
    merge:  (B, H, S, Dh) -> transpose -> (B, S, H, Dh) -> reshape (B, S, H·Dh)

Both are pure permutations of the elements (no arithmetic), so each backward
pass is the inverse permutation applied to the upstream gradient: the backward
of split is a merge, the backward of merge is a split. Outputs are views where
NumPy/CuPy can give one (reshape and transpose copy nothing unless they must).
"""

from __future__ import annotations

from typing import NamedTuple

from ..validation import ShapeError, check_array, check_positive_integer, check_shape


class SplitHeadsCache(NamedTuple):
    shape: tuple    # (B, S, D) the input shape
    num_heads: int  # H


class MergeHeadsCache(NamedTuple):
    shape: tuple    # (B, H, S, Dh) the input shape


def split_heads_forward(x, num_heads):
    """(B, S, D) -> (B, H, S, Dh) with Dh = D / H.

    Head h gets the feature slice x[..., h·Dh:(h+1)·Dh] of every position:
        out[b, h, s, i] = x[b, s, h·Dh + i]
    x: (B, S, D), D divisible by num_heads
    returns out: (B, H, S, Dh), cache
    """
    check_array(x, "x", ndim=3)
    num_heads = check_positive_integer(num_heads, "num_heads")
    batch, seq_len, d_model = x.shape
    if d_model % num_heads != 0:
        raise ShapeError(f"the model width D must be divisible by num_heads: x has shape {tuple(x.shape)} "
                         f"(D = {d_model}), num_heads = {num_heads}")
    head_dim = d_model // num_heads
    out = x.reshape(batch, seq_len, num_heads, head_dim).transpose(0, 2, 1, 3)
    return out, SplitHeadsCache(tuple(x.shape), num_heads)


def split_heads_backward(dout, cache: SplitHeadsCache):
    """Gradient of the split: the inverse permutation (a merge).

    out[b, h, s, i] = x[b, s, h·Dh + i] moves each element unchanged, so
        dx[b, s, h·Dh + i] = dout[b, h, s, i]
    dout: (B, H, S, Dh)
    returns dx: (B, S, D)
    """
    batch, seq_len, d_model = cache.shape
    num_heads = cache.num_heads
    check_shape(dout, "dout", (batch, num_heads, seq_len, d_model // num_heads), "(B, H, S, Dh)")
    return dout.transpose(0, 2, 1, 3).reshape(batch, seq_len, d_model)


def merge_heads_forward(x):
    """(B, H, S, Dh) -> (B, S, H·Dh): the heads side by side again.

        out[b, s, h·Dh + i] = x[b, h, s, i]
    x: (B, H, S, Dh)
    returns out: (B, S, D) with D = H·Dh, cache
    """
    check_array(x, "x", ndim=4)
    batch, num_heads, seq_len, head_dim = x.shape
    out = x.transpose(0, 2, 1, 3).reshape(batch, seq_len, num_heads * head_dim)
    return out, MergeHeadsCache(tuple(x.shape))


def merge_heads_backward(dout, cache: MergeHeadsCache):
    """Gradient of the merge: the inverse permutation (a split).

        dx[b, h, s, i] = dout[b, s, h·Dh + i]
    dout: (B, S, D)
    returns dx: (B, H, S, Dh)
    """
    batch, num_heads, seq_len, head_dim = cache.shape
    check_shape(dout, "dout", (batch, seq_len, num_heads * head_dim), "(B, S, D)")
    return dout.reshape(batch, seq_len, num_heads, head_dim).transpose(0, 2, 1, 3)
