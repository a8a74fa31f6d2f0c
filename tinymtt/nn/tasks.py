"""The two multi-task layers: the task encoder and task attention.

TaskEncoder -- one input, different representations per task:
    T0 = onehot(task id)                 (B, T)
    Tf = T0·W + b                        (B, D)          no hidden layer
    Tf = ReLU(T0·W1 + b1)·W2 + b2        (B, D)          with a hidden layer
and the model adds Tf to every position of the input embedding.

TaskAttention -- at each position, the stream of task τ attends over all
task streams (docs/DESIGN.md, "Task attention"):
    X      : (B, T, S, D) -> (B·S, T, D)    every position is a "sequence" of T task tokens
    A      = MHA(X)                         Q_τ = X_τWq, K_j = X_jWk, V_j = X_jWv; softmax over j
    out    = LayerNorm(X + g·A),  g = tanh(γ) (gated, γ = 0 at start) or 1
The gate starts the model as independent task streams (g = 0) and lets it
open the mixing as it learns:  ∂L/∂γ = Σ (∂L/∂r ⊙ A) · (1 − tanh²γ),
with r = X + g·A the LayerNorm input. The T×T weights, averaged over the
positions and heads, are the task-affinity map.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backend import array_module
from ..validation import check_array, check_index_range, check_positive_integer, check_shape
from .attention import MultiHeadAttention
from .basic import LayerNorm, Linear, ReLU
from .module import Module


def one_hot(ids, num_classes, dtype):
    """(B,) integer ids -> (B, num_classes) float one-hot rows."""
    xp = array_module(ids)
    return (ids[:, None] == xp.arange(num_classes)[None, :]).astype(dtype)


class TaskEncoder(Module):
    """forward(task_ids (B,)) -> task features Tf (B, D); backward returns None (ids)."""

    def __init__(self, num_tasks, d_model, rng, hidden=None, dtype="float32"):
        super().__init__()
        self.num_tasks = check_positive_integer(num_tasks, "num_tasks")
        self.dtype = dtype
        if hidden:
            self.hidden = Linear(num_tasks, check_positive_integer(hidden, "hidden"), rng, dtype=dtype)
            self.relu = ReLU()
            self.out = Linear(hidden, d_model, rng, dtype=dtype)
        else:
            self.hidden, self.relu = None, None
            self.out = Linear(num_tasks, d_model, rng, dtype=dtype)

    def forward(self, task_ids):
        check_array(task_ids, "task_ids", ndim=1, kind="int")
        check_index_range(task_ids, "task_ids", self.num_tasks, "number of tasks")
        features = one_hot(task_ids, self.num_tasks, self.dtype)
        if self.hidden is not None:
            features = self.relu(self.hidden(features))
        self.keep(True)
        return self.out(features)

    def backward(self, dout):
        self.saved()
        dfeatures = self.out.backward(dout)
        if self.hidden is not None:
            self.hidden.backward(self.relu.backward(dfeatures))
        return None


class _TaskAttentionCache(NamedTuple):
    shape: tuple     # (B, T, S, D)
    mixed: object    # A, the attention output (B·S, T, D)
    gate: object     # g = tanh(γ) (or 1.0 without a gate)


class TaskAttention(Module):
    """forward(streams (B, T, S, D)) -> (B, T, S, D); ``affinity()`` gives the T×T map."""

    def __init__(self, d_model, num_heads, num_tasks, rng, gate=True, dropout=0.0, dtype="float32"):
        super().__init__()
        self.num_tasks = check_positive_integer(num_tasks, "num_tasks")
        self.attn = MultiHeadAttention(d_model, num_heads, rng, dropout=dropout, dtype=dtype)
        self.norm = LayerNorm(d_model, dtype=dtype)
        self.gated = bool(gate)
        if self.gated:
            self.add_param("gate", [0.0], dtype)

    def forward(self, streams):
        check_array(streams, "streams", ndim=4, kind="float")
        check_shape(streams, "streams", (None, self.num_tasks, None, None), "(B, T, S, D)")
        xp = array_module(streams)
        batch, tasks, seq_len, width = streams.shape
        # each position becomes a sequence of T task tokens
        tokens = streams.transpose(0, 2, 1, 3).reshape(batch * seq_len, tasks, width)
        mixed = self.attn(tokens)
        gate = xp.tanh(self.params["gate"]) if self.gated else 1.0
        out = self.norm(tokens + gate * mixed)
        self.keep(_TaskAttentionCache(streams.shape, mixed, gate))
        return out.reshape(batch, seq_len, tasks, width).transpose(0, 2, 1, 3)

    def backward(self, dout):
        cache = self.saved()
        batch, tasks, seq_len, width = cache.shape
        dout_tokens = dout.transpose(0, 2, 1, 3).reshape(batch * seq_len, tasks, width)
        dresidual = self.norm.backward(dout_tokens)           # ∂L/∂r, r = X + g·A
        if self.gated:                                         # ∂L/∂γ = Σ ∂L/∂r ⊙ A · (1 − g²)
            self.grads["gate"] += (dresidual * cache.mixed).sum() * (1 - cache.gate ** 2)
        dtokens = dresidual + self.attn.backward(cache.gate * dresidual)
        return dtokens.reshape(batch, seq_len, tasks, width).transpose(0, 2, 1, 3)

    def affinity(self, mask=None):
        """The T×T task-affinity map of the last forward: row τ = how much task τ's
        stream read from each task, averaged over heads and (unmasked) positions.

        mask: (B, S) bool, True = a real token (None = every position).
        """
        weights = self.attn.weights
        if weights is None:
            raise RuntimeError("TaskAttention.affinity needs a forward pass first")
        xp = array_module(weights)
        per_position = weights.mean(axis=1)                   # (B·S, T, T), mean over heads
        if mask is None:
            return per_position.mean(axis=0)
        keep = mask.reshape(-1).astype(per_position.dtype)
        return (per_position * keep[:, None, None]).sum(axis=0) / xp.maximum(keep.sum(), 1)
