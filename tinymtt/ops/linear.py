"""The affine (fully connected) layer: out = x·W + b."""

from __future__ import annotations

from typing import NamedTuple

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
    # One (N, Din)·(Din, Dout) product over all leading axes at once: a 3-D x @ w
    # would run B small matmuls instead of one large one (slower in NumPy).
    out = x.reshape(-1, w.shape[0]) @ w
    if b is not None:
        check_array(b, "b", ndim=1, kind="float")
        check_shape(b, "b", (w.shape[1],), "(Dout,)")
        out += b   # out is a fresh array: add in place, no second (N, Dout) array
    return out.reshape(x.shape[:-1] + (w.shape[1],)), LinearCache(x, w, b is not None)


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
    dx = (rows_dout @ w.T).reshape(x.shape)
    dw = rows_x.T @ rows_dout
    db = rows_dout.sum(axis=0) if cache.has_bias else None
    return dx, dw, db
