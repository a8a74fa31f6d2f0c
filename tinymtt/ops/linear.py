"""The affine (fully connected) layer: out = x·W + b."""

from __future__ import annotations

from typing import NamedTuple

from ..backend import array_module, blockwise
from ..validation import check_array, check_same_module, check_shape


class LinearCache(NamedTuple):
    x: object   # (..., Din) the input, kept for dW
    w: object   # (Din, Dout) kept for dx
    has_bias: bool


def linear_forward(x, w, b=None):
    """out = x·W + b over the last axis.

    x: (..., Din) -- any leading axes (B, or B×S, ...)
    w: (Din, Dout)
    b: (Dout,) or None
    returns out: (..., Dout), cache
    """
    check_array(x, "x", min_ndim=1, kind="float")
    check_array(w, "w", ndim=2, kind="float")
    check_same_module(x=x, w=w, b=b)
    if x.shape[-1] != w.shape[0]:
        raise ValueError(f"x's last axis must equal w's first (Din): x has shape {tuple(x.shape)}, "
                         f"w has shape {tuple(w.shape)}")
    if b is not None:
        check_array(b, "b", ndim=1, kind="float")
        check_shape(b, "b", (w.shape[1],), "(Dout,)")
    # One (N, Din)·(Din, Dout) product over all leading axes at once: a 3-D x @ w
    # would run B small matmuls instead of one large one (slower in NumPy).
    xp = array_module(x)
    rows = x.reshape(-1, w.shape[0])
    out = xp.empty((rows.shape[0], w.shape[1]), dtype=xp.result_type(x.dtype, w.dtype))
    blockwise(_linear_forward_kernel, rows, out, whole=(w, b), blas=True)   # each row is independent
    return out.reshape(x.shape[:-1] + (w.shape[1],)), LinearCache(x, w, b is not None)


def _linear_forward_kernel(x, out, w, b):
    """out = x·W + b on a block of rows."""
    array_module(x).matmul(x, w, out=out)
    if b is not None:
        out += b   # out is fresh: add in place, no second (N, Dout) array


def linear_backward(dout, cache: LinearCache):
    """Gradients of out = x·W + b.

    With every leading axis flattened into N rows (X: N×Din, dOut: N×Dout):
        dX = dOut · Wᵀ           -- each x_nk feeds out_nj through W_kj
        dW = Xᵀ · dOut           -- summed over all N rows (every example uses W)
        db = Σ_n dOut_n          -- likewise summed over the rows
    returns (dx (..., Din), dw (Din, Dout), db (Dout,) or None)
    """
    x, w = cache.x, cache.w
    din, dout_width = w.shape
    rows_x = x.reshape(-1, din)
    rows_dout = dout.reshape(-1, dout_width)
    xp = array_module(dout)
    dx = xp.empty(rows_x.shape, dtype=xp.result_type(dout.dtype, w.dtype))   # the dtypes dOut·Wᵀ and Xᵀ·dOut have
    dw = xp.empty(w.shape, dtype=xp.result_type(x.dtype, dout.dtype))
    # Blocks: dX by rows of dOut (each row of dX is its row of dOut times Wᵀ);
    # dW by rows of Xᵀ (row k of dW is row k of Xᵀ times dOut), so no block sums over rows.
    blockwise(_matmul_kernel, rows_dout, dx, whole=(w.T,), blas=True)
    blockwise(_matmul_kernel, rows_x.T, dw, whole=(rows_dout,), blas=True)
    db = rows_dout.sum(axis=0) if cache.has_bias else None
    return dx.reshape(x.shape), dw, db


def _matmul_kernel(a, out, b):
    """out = a·b on a block of a's rows."""
    array_module(a).matmul(a, b, out=out)
