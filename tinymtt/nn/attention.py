"""Multi-head attention as a layer: projections, heads, attention, output.

    Q = x_q·Wq,  K = x_kv·Wk,  V = x_kv·Wv      (x_kv = x_q for self-attention)
    heads: (B, S, D) -> (B, H, S, Dh)
    O = softmax(Q Kᵀ/√Dh + mask) V              (per head; tinymtt.ops.attention)
    out = merge(O)·Wo

Backward runs the same chain in reverse. In self-attention x feeds Q, K and V,
so its gradient is the sum of the three paths.
"""

from __future__ import annotations

from typing import NamedTuple

from .. import backend
from ..ops import (attention_backward, attention_forward, merge_heads_backward, merge_heads_forward,
                   split_heads_backward, split_heads_forward)
from ..validation import check_positive_integer, check_probability
from .basic import Linear, call_rng
from .module import Module


class _MHACache(NamedTuple):
    attention: object
    split_q: object
    split_k: object
    split_v: object
    merge: object
    self_attention: bool


class MultiHeadAttention(Module):
    """Self- or cross-attention with H heads over width D (Dh = D/H).

    forward(x, context=None, mask=None): x (B, Sq, D); context (B, Sk, D) for
    cross-attention (None = self); mask bool broadcastable to (B, H, Sq, Sk),
    True = may attend. Returns (B, Sq, D). The last attention weights
    (B, H, Sq, Sk) stay in ``self.weights`` for plotting.
    backward(dout) returns dx (self-attention) or (dx, dcontext).
    """

    def __init__(self, d_model, num_heads, rng, dropout=0.0, dtype="float32"):
        super().__init__()
        check_positive_integer(d_model, "d_model")
        check_positive_integer(num_heads, "num_heads")
        if d_model % num_heads:
            raise ValueError(f"d_model must be divisible by num_heads, got d_model={d_model}, num_heads={num_heads}")
        self.num_heads = num_heads
        self.dropout = check_probability(dropout, "dropout")
        self.seed = int(rng.integers(2 ** 62))
        self.calls = 0
        self.wq = Linear(d_model, d_model, rng, dtype=dtype)
        self.wk = Linear(d_model, d_model, rng, dtype=dtype)
        self.wv = Linear(d_model, d_model, rng, dtype=dtype)
        self.wo = Linear(d_model, d_model, rng, dtype=dtype)
        self.weights = None

    def forward(self, x, context=None, mask=None):
        self_attention = context is None
        source = x if self_attention else context
        q, split_q = split_heads_forward(self.wq(x), self.num_heads)
        k, split_k = split_heads_forward(self.wk(source), self.num_heads)
        v, split_v = split_heads_forward(self.wv(source), self.num_heads)
        p, rng = 0.0, None
        if self.training and self.dropout > 0:
            p, rng = self.dropout, call_rng(self.seed, self.calls, backend.array_module(x))
            self.calls += 1
        heads, attention = attention_forward(q, k, v, mask, p, rng)
        merged, merge = merge_heads_forward(heads)
        self.weights = attention.weights
        self.keep(_MHACache(attention, split_q, split_k, split_v, merge, self_attention))
        return self.wo(merged)

    def backward(self, dout):
        cache = self.saved()
        dheads = merge_heads_backward(self.wo.backward(dout), cache.merge)
        dq, dk, dv = attention_backward(dheads, cache.attention)
        dx = self.wq.backward(split_heads_backward(dq, cache.split_q))
        dsource = (self.wk.backward(split_heads_backward(dk, cache.split_k))
                   + self.wv.backward(split_heads_backward(dv, cache.split_v)))
        if cache.self_attention:
            return dx + dsource
        return dx, dsource
