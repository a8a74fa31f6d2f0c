"""Masked mean over the sequence: one vector per example for the sequence heads."""

from __future__ import annotations

from typing import NamedTuple

from ..backend import array_module
from ..validation import check_array, check_shape


class MaskedMeanCache(NamedTuple):
    weights: object  # (B, S, 1): mask / count, the weight of each position in the mean
    shape: tuple     # x's shape (B, S, D)


def masked_mean_forward(x, mask=None):
    """Mean over the positions that the mask keeps.

    x: (B, S, D); mask: (B, S) bool, True = a real token (None = all real)
    out: (B, D), out_b = Σ_s m_bs x_bs / max(Σ_s m_bs, 1)
    A fully masked example gives zeros, never NaN.
    """
    check_array(x, "x", ndim=3, kind="float")
    xp = array_module(x)
    batch, seq_len, _ = x.shape
    if mask is None:
        mask = xp.ones((batch, seq_len), dtype=bool)
    check_array(mask, "mask", ndim=2, kind="bool")
    check_shape(mask, "mask", (batch, seq_len), "(B, S)")
    keep = mask.astype(x.dtype)[:, :, None]
    count = xp.maximum(keep.sum(axis=1, keepdims=True), 1)
    weights = keep / count
    out = (x * weights).sum(axis=1)
    return out, MaskedMeanCache(weights, x.shape)


def masked_mean_backward(dout, cache: MaskedMeanCache):
    """out_b is linear in x: ∂out_bd/∂x_bsd = m_bs / count_b, so
    dx_bsd = dout_bd · m_bs / count_b  (zero at masked positions)."""
    return dout[:, None, :] * cache.weights
