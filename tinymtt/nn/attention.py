"""Multi-head attention as a layer: projections, heads, attention, output.

    Q = x_q·Wq,  K = x_kv·Wk,  V = x_kv·Wv      (x_kv = x_q for self-attention)
    heads: (B, S, D) -> (B, H, S, Dh)
    O = softmax(Q Kᵀ/√Dh + mask) V              (per head; tinymtt.ops.attention)
    out = merge(O)·Wo

Backward runs the same chain in reverse. In self-attention x feeds Q, K and V,
so its gradient is the sum of the three paths.

With ``lora_rank`` r (the "lora" task module) every projection gets a per-task
low-rank update, W + A_t·B_t (tinymtt.nn.task_modules.TaskLoRA), and forward
needs ``tasks`` (N,): the task of each example. Its backward adds the update's
path to the shared one at each projection.
"""

from __future__ import annotations

from typing import NamedTuple

from .. import backend
from ..ops import (attention_backward, attention_forward, merge_heads_backward, merge_heads_forward,
                   split_heads_backward, split_heads_forward)
from ..validation import check_positive_integer, check_probability
from .basic import Linear, call_rng
from .module import Module
from .task_modules import TaskLoRA


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

    def __init__(self, d_model, num_heads, rng, dropout=0.0, dtype="float32", lora_rank=None, num_tasks=None):
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
        self.lora = None
        if lora_rank:   # one update per projection, in the order q, k, v, o
            self.lora = [TaskLoRA(d_model, d_model, num_tasks, lora_rank, rng, dtype) for _ in range(4)]
        self.weights = None

    def _project(self, index, x, tasks):
        """x·W (+ x·A_t·B_t with LoRA) for projection ``index`` (0..3 = q, k, v, o)."""
        out = (self.wq, self.wk, self.wv, self.wo)[index](x)
        if self.lora is None:
            return out
        if tasks is None:
            raise ValueError("MultiHeadAttention with LoRA needs tasks (N,): the task of each example")
        return out + self.lora[index](x, tasks)

    def _project_backward(self, index, dout):
        dx = (self.wq, self.wk, self.wv, self.wo)[index].backward(dout)
        return dx if self.lora is None else dx + self.lora[index].backward(dout)

    def forward(self, x, context=None, mask=None, tasks=None):
        self_attention = context is None
        source = x if self_attention else context
        q, split_q = split_heads_forward(self._project(0, x, tasks), self.num_heads)
        k, split_k = split_heads_forward(self._project(1, source, tasks), self.num_heads)
        v, split_v = split_heads_forward(self._project(2, source, tasks), self.num_heads)
        p, rng = 0.0, None
        if self.training and self.dropout > 0:
            p, rng = self.dropout, call_rng(self.seed, self.calls, backend.array_module(x))
            self.calls += 1
        heads, attention = attention_forward(q, k, v, mask, p, rng)
        merged, merge = merge_heads_forward(heads)
        self.weights = attention.weights
        self.keep(_MHACache(attention, split_q, split_k, split_v, merge, self_attention))
        return self._project(3, merged, tasks)

    def backward(self, dout):
        cache = self.saved()
        dheads = merge_heads_backward(self._project_backward(3, dout), cache.merge)
        dq, dk, dv = attention_backward(dheads, cache.attention)
        dx = self._project_backward(0, split_heads_backward(dq, cache.split_q))
        dsource = (self._project_backward(1, split_heads_backward(dk, cache.split_k))
                   + self._project_backward(2, split_heads_backward(dv, cache.split_v)))
        if cache.self_attention:
            return dx + dsource
        return dx, dsource
