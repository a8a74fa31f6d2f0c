"""Token embedding (a table lookup) and the fixed sinusoidal positional encoding."""

from __future__ import annotations

from typing import NamedTuple

import numpy

from ..backend import array_module, get_array_module, scatter_add
from ..validation import check_array, check_index_range, check_positive_integer, check_same_module


class EmbeddingCache(NamedTuple):
    ids: object        # (...) the token ids, kept to route dout back to their rows
    table_shape: tuple  # (V, D)
    dtype: object      # the table's dtype, so dtable has it too


def embedding_forward(ids, table):
    """out = E[ids]: each id picks one row of the table.

    ids:   (...) integers in [0, V) -- any shape, usually (B, S)
    table: (V, D) the embedding matrix E
    returns out: (..., D), cache

    The ids are range-checked first: CuPy (like CUDA) wraps an out-of-range
    index around silently instead of raising.
    """
    check_array(table, "table", ndim=2, kind="float")
    check_array(ids, "ids", kind="int")
    check_same_module(ids=ids, table=table)
    check_index_range(ids, "ids", table.shape[0], "vocabulary size V =")
    out = table[ids]
    return out, EmbeddingCache(ids, tuple(table.shape), table.dtype)


def embedding_backward(dout, cache: EmbeddingCache):
    """Gradient of out = E[ids] with respect to the table E.

    With every position n (all leading axes flattened) reading row ids_n:
        out_n = E_{ids_n}    so    dE_v = Σ_{n : ids_n = v} dout_n
    A token that appears twice gets both gradients summed (a scatter-add:
    plain ``dE[ids] += dout`` would keep only one of the repeated writes);
    rows of tokens that never appear get zero.
    dout: (..., D)
    returns dtable: (V, D)
    """
    xp = array_module(dout)
    vocab_size, dim = cache.table_shape
    dtable = xp.zeros((vocab_size, dim), dtype=cache.dtype)
    rows = dout.reshape(-1, dim).astype(cache.dtype, copy=False)
    scatter_add(dtable, cache.ids.reshape(-1), rows)
    return dtable


def positional_encoding(seq_len, dim, dtype="float32", xp=None):
    """The fixed sinusoidal table P of "Attention Is All You Need".

        P[pos, 2i]   = sin(pos / 10000^(2i/D))
        P[pos, 2i+1] = cos(pos / 10000^(2i/D))

    so P[0] = [0, 1, 0, 1, ...]. An odd D works: its last column is a sine.
    seq_len: S, dim: D (positive ints); dtype: a float dtype;
    xp: the array module to put P in (default: the current backend).
    returns P: (S, D). P is a constant: it has no gradient.

    Computed on the host in float64 (the angles reach S, where float32 has
    lost digits), then cast to ``dtype`` and moved to the device.
    """
    seq_len = check_positive_integer(seq_len, "seq_len")
    dim = check_positive_integer(dim, "dim")
    if numpy.dtype(dtype).kind != "f":
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype!r}")
    xp = xp or get_array_module()
    positions = numpy.arange(seq_len, dtype=numpy.float64)[:, None]     # (S, 1)
    columns = numpy.arange(dim)
    pair_start = (columns - columns % 2).astype(numpy.float64)          # 2i for columns 2i and 2i+1
    angles = positions / numpy.power(10000.0, pair_start / dim)         # (S, D)
    table = numpy.where(columns % 2 == 0, numpy.sin(angles), numpy.cos(angles))
    return xp.asarray(table, dtype=dtype)
