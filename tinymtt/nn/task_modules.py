"""Task modules: small task-specific pieces inside the shared encoder (docs/DESIGN.md, "Task modules").

Each takes, beside its input, ``tasks`` (N,): the task id of every example
(conditioned mode) or of every stream (joint mode, row b·T + τ has task τ).
Per-task parameters are tables with the task on the first axis; forward
gathers the rows of each example's task, backward scatter-adds into them
(``tinymtt.backend.scatter_add`` through the ops), so there is no Python loop
over the batch or the tasks.

TaskLayerNorm ("task-norm", after HyperFormer, Mahabadi et al. 2021):
    e_t = E[t]                    a task embedding of width d_e, one per norm (T, d_e)
    γ_t = 1 + e_t·W_γ,  β_t = e_t·W_β            W_γ, W_β (d_e, D), shared, start at 0
    out = γ_t ⊙ x̂ + β_t,   x̂ = (x − μ)/σ  per row
  W_γ = W_β = 0 at the start, so the layer starts as a plain LayerNorm (γ = 1, β = 0).
  Backward, per example n with task t (rows i of x̂, g = dout):
    dγ_n = Σ_i g_i ⊙ x̂_i,  dβ_n = Σ_i g_i                         (N, D)
    dx   = layernorm backward with γ = 1 of  g ⊙ γ_n
    dW_γ = Σ_n e_nᵀ dγ_n,  dW_β = Σ_n e_nᵀ dβ_n,  de_n = dγ_n W_γᵀ + dβ_n W_βᵀ
    dE[t] += de_n  (scatter-add over the examples of task t)

TaskLoRA ("lora", Hu et al. 2021): a per-task low-rank update of a shared projection,
    y = x·W + b + x·A_t·B_t        A (T, Din, r), B (T, r, Dout), B = 0 at the start
  so the model starts as the shared one. Backward (u = x·A_t):
    dB_t += uᵀ·dy,  du = dy·B_tᵀ,  dA_t += xᵀ·du,  dx = dy·Wᵀ + du·A_tᵀ

MixtureOfExperts ("mmoe", Ma et al. KDD 2018): E shared expert FFNs mixed by a
per-task softmax gate that reads the input,
    p = softmax(x·W_g[t] + b_g[t])      (N, S, E);  W_g (T, D, E), b_g (T, E), both 0 at the start
    out = Σ_e p_e ⊙ FFN_e(x)
  Backward: dFFN_e(x) = p_e ⊙ dout;  dp_e = Σ_d dout ⊙ FFN_e(x);
    dlogits = softmax backward of dp;  dx = Σ_e dx_e + dlogits·W_g[t]ᵀ.
  The loop over the E experts is a loop over E different networks (E is 2-4), not over data.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..backend import array_module
from ..ops import (embedding_backward, embedding_forward, layernorm_backward, layernorm_forward,
                   linear_backward, linear_forward, softmax_backward, softmax_forward,
                   task_linear_backward, task_linear_forward)
from ..validation import check_positive_integer
from .module import Module

TASK_MODULES = ("none", "task-norm", "lora", "mmoe")


class _TaskNormCache(NamedTuple):
    x_hat: object
    norm: object       # the layernorm cache (γ = 1, β = 0)
    gamma: object      # (N, 1.., D) γ_n, shaped to broadcast over x's middle axes
    embed: object
    to_gamma: object
    to_beta: object


class TaskLayerNorm(Module):
    """forward(x (N, ..., D), tasks (N,)) -> (N, ..., D): a LayerNorm whose γ, β come from the task."""

    def __init__(self, dim, num_tasks, rng, embed_dim=8, eps=1e-5, dtype="float32"):
        super().__init__()
        check_positive_integer(dim, "dim")
        self.num_tasks = check_positive_integer(num_tasks, "num_tasks")
        check_positive_integer(embed_dim, "embed_dim")
        self.eps = eps
        self.add_param("task_embedding", rng.standard_normal((num_tasks, embed_dim)), dtype)
        self.add_param("gamma_weight", [[0.0] * dim] * embed_dim, dtype)   # γ_t = 1 at the start
        self.add_param("beta_weight", [[0.0] * dim] * embed_dim, dtype)    # β_t = 0 at the start

    def forward(self, x, tasks):
        xp = array_module(x)
        width = x.shape[-1]
        embedded, embed = embedding_forward(tasks, self.params["task_embedding"])       # (N, d_e)
        offset, to_gamma = linear_forward(embedded, self.params["gamma_weight"])          # (N, D)
        beta, to_beta = linear_forward(embedded, self.params["beta_weight"])              # (N, D)
        x_hat, norm = layernorm_forward(x, xp.ones(width, dtype=x.dtype), xp.zeros(width, dtype=x.dtype), self.eps)
        middle = (1,) * (x.ndim - 2)
        gamma = (1 + offset).reshape((x.shape[0],) + middle + (width,))
        self.keep(_TaskNormCache(x_hat, norm, gamma, embed, to_gamma, to_beta))
        return x_hat * gamma + beta.reshape(gamma.shape)

    def backward(self, dout):
        cache = self.saved()
        middle = tuple(range(1, dout.ndim - 1))
        dgamma = (dout * cache.x_hat).sum(axis=middle)        # (N, D)
        dbeta = dout.sum(axis=middle)                         # (N, D)
        dx = layernorm_backward(dout * cache.gamma, cache.norm)[0]
        dembedded, dw_gamma, _ = linear_backward(dgamma, cache.to_gamma)
        dembedded_beta, dw_beta, _ = linear_backward(dbeta, cache.to_beta)
        self.grads["gamma_weight"] += dw_gamma
        self.grads["beta_weight"] += dw_beta
        self.grads["task_embedding"] += embedding_backward(dembedded + dembedded_beta, cache.embed)
        return dx


class TaskLoRA(Module):
    """forward(x (N, ..., Din), tasks (N,)) -> x·A_t·B_t (N, ..., Dout): the update alone."""

    def __init__(self, in_features, out_features, num_tasks, rank, rng, dtype="float32"):
        super().__init__()
        self.num_tasks = check_positive_integer(num_tasks, "num_tasks")
        self.rank = check_positive_integer(rank, "rank")
        bound = 1.0 / math.sqrt(in_features)
        self.add_param("lora_a", rng.uniform(-bound, bound, (num_tasks, in_features, rank)), dtype)
        self.add_param("lora_b", [[[0.0] * out_features] * rank] * num_tasks, dtype)   # B = 0: no update at start

    def forward(self, x, tasks):
        low, first = task_linear_forward(x, self.params["lora_a"], tasks)     # u = x·A_t  (N, ..., r)
        out, second = task_linear_forward(low, self.params["lora_b"], tasks)  # u·B_t
        self.keep((first, second))
        return out

    def backward(self, dout):
        first, second = self.saved()
        dlow, dlora_b, _ = task_linear_backward(dout, second)
        dx, dlora_a, _ = task_linear_backward(dlow, first)
        self.grads["lora_b"] += dlora_b
        self.grads["lora_a"] += dlora_a
        return dx


class _MoECache(NamedTuple):
    gate: object       # the task-linear cache of the gate logits
    softmax: object
    probs: object      # (N, ..., E)
    outputs: list      # FFN_e(x), each (N, ..., D)


class MixtureOfExperts(Module):
    """forward(x (N, S, D), tasks (N,)) -> (N, S, D); ``gates`` keeps the last probabilities (N, S, E).

    experts: the E expert layers (each (N, S, D) -> (N, S, D), e.g. FeedForward), built by the caller.
    """

    def __init__(self, experts, d_model, num_tasks, dtype="float32"):
        super().__init__()
        self.num_tasks = check_positive_integer(num_tasks, "num_tasks")
        self.experts = list(experts)
        self.num_experts = num_experts = check_positive_integer(len(self.experts), "number of experts")
        self.add_param("gate_weight", [[[0.0] * num_experts] * d_model] * num_tasks, dtype)   # uniform gates
        self.add_param("gate_bias", [[0.0] * num_experts] * num_tasks, dtype)
        self.gates, self.tasks = None, None

    def forward(self, x, tasks):
        logits, gate = task_linear_forward(x, self.params["gate_weight"], tasks, self.params["gate_bias"])
        probs, softmax = softmax_forward(logits)
        outputs = [expert(x) for expert in self.experts]            # E networks: a loop over E, not over data
        out = probs[..., 0:1] * outputs[0]
        for e in range(1, self.num_experts):
            out = out + probs[..., e:e + 1] * outputs[e]
        self.gates, self.tasks = probs, tasks
        self.keep(_MoECache(gate, softmax, probs, outputs))
        return out

    def backward(self, dout):
        cache = self.saved()
        xp = array_module(dout)
        dprobs = xp.stack([(dout * y).sum(axis=-1) for y in cache.outputs], axis=-1)   # (N, ..., E)
        dx = self.experts[0].backward(dout * cache.probs[..., 0:1])
        for e in range(1, self.num_experts):
            dx = dx + self.experts[e].backward(dout * cache.probs[..., e:e + 1])
        dlogits = softmax_backward(dprobs, cache.softmax)
        dx_gate, dgate_weight, dgate_bias = task_linear_backward(dlogits, cache.gate)
        self.grads["gate_weight"] += dgate_weight
        self.grads["gate_bias"] += dgate_bias
        return dx + dx_gate

    def affinity(self, mask=None):
        """The T×E gate matrix of the last forward: row t = task t's mean gate over its (real) positions.

        mask: (N, S) bool, True = a real token (None = every position). A task with no example has a zero row.
        """
        if self.gates is None:
            raise RuntimeError("MixtureOfExperts.affinity needs a forward pass first")
        xp = array_module(self.gates)
        probs = self.gates.reshape(self.gates.shape[0], -1, self.num_experts)        # (N, S, E)
        keep = (xp.ones(probs.shape[:2], dtype=probs.dtype) if mask is None
                else mask.reshape(probs.shape[:2]).astype(probs.dtype))
        rows = (self.tasks[:, None] == xp.arange(self.num_tasks)[None, :]).astype(probs.dtype)   # (N, T)
        total = xp.einsum("nt,ns,nse->te", rows, keep, probs)
        count = xp.einsum("nt,ns->t", rows, keep)
        return total / xp.maximum(count, 1)[:, None]
