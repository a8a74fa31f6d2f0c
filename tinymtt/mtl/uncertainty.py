"""Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018): each task's weight from a learned noise.

Each task's likelihood gets a learned noise σ_i; with s_i = log σ_i² (unconstrained, and
σ_i² = exp(s_i) > 0 always) the negative log-likelihood of all tasks is

    L = Σ_i c_i exp(−s_i) L_i + s_i/2
    c_i = ½ for regression:      −log N(y; f, σ²) = ‖y − f‖²/(2σ²) + log σ + const
    c_i = 1 for classification:  softmax(f/σ²) gives ≈ CE/σ² + log σ
    (log σ = s/2). By hand:
    ∂L/∂L_i = c_i exp(−s_i)               -- the task weight w_i, positive
    ∂L/∂s_i = −c_i exp(−s_i) L_i + ½      -- zero at exp(−s_i) = 1/(2 c_i L_i), i.e. w_i = 1/(2 L_i)

So a task whose loss is large gets a small weight, and the s_i/2 term stops
σ_i from growing without bound (which would switch every task off).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from ..backend import array_module
from ..optim import Adam
from ..validation import check_number, scalar_upstream
from .base import Strategy, check_task_vectors


# -- the rule ----------------------------------------------------------------------
class UncertaintyCache(NamedTuple):
    losses: object        # (T,) L_i
    scales: object        # (T,) c_i
    precision: object     # (T,) exp(−s_i)


def uncertainty_forward(losses, log_variances, scales):
    """L = Σ_i c_i exp(−s_i) L_i + s_i/2 (module docstring).

    losses: (T,) L_i;  log_variances: (T,) s_i = log σ_i²;  scales: (T,) c_i
    (½ for regression, 1 for classification). Returns (L 0-d, cache).
    """
    xp = check_task_vectors(losses=losses, log_variances=log_variances, scales=scales)
    precision = xp.exp(-log_variances)                                   # 1/σ² = exp(−s)
    total = xp.asarray((scales * precision * losses + 0.5 * log_variances).sum())
    return total, UncertaintyCache(losses, scales, precision)


def uncertainty_backward(dout, cache: UncertaintyCache):
    """(dlosses, dlog_variances): dout·c_i exp(−s_i) and dout·(½ − c_i exp(−s_i) L_i)."""
    dout = scalar_upstream(dout, cache.losses.dtype, array_module(cache.losses))
    weights = cache.scales * cache.precision                             # w_i = c_i exp(−s_i)
    return dout * weights, dout * (0.5 - weights * cache.losses)


# -- the strategy --------------------------------------------------------------------
class Uncertainty(Strategy):
    """w_i = c_i exp(−s_i) with s_i learned (the rule above).

    kinds: each task's kind ("regression" gives c_i = ½, others 1; None: all 1).
    s starts at ``initial`` and is updated by the strategy's own Adam (learning
    rate ``lr``, no weight decay: a decay would pull every σ_i towards 1) on
    ∂L/∂s_i of the counted tasks, after each model step.
    """

    name = "uncertainty"
    options = {"lr": 0.01, "initial": 0.0}

    def __init__(self, num_tasks, *, kinds=None, lr=0.01, initial=0.0):
        super().__init__(num_tasks, kinds=kinds)
        self.scales = numpy.array([0.5 if kind == "regression" else 1.0 for kind in self.kinds or [None] * num_tasks])
        initial = check_number(initial, "initial", low=-float("inf"))
        self.log_variances = numpy.full(self.num_tasks, initial)
        self.optimizer = Adam({"log_variances": self.log_variances}, lr=check_number(lr, "lr", low_open=True))

    def weights(self):
        return self.scales * numpy.exp(-self.log_variances)

    def after_step(self, losses, counted):
        losses, counted = self.vectors(losses, counted)
        _, cache = uncertainty_forward(losses, self.log_variances, self.scales)
        _, dlog_variances = uncertainty_backward(1.0, cache)
        self.optimizer.step({"log_variances": numpy.where(counted, dlog_variances, 0.0)})

    def state_dict(self):
        return {"log_variances": self.log_variances.copy(),
                **{f"optimizer.{key}": value for key, value in self.optimizer.state_dict().items()}}

    def load_state_dict(self, state):
        self.optimizer.load_state_dict({key[len("optimizer."):]: value for key, value in state.items()
                                        if key.startswith("optimizer.")})
        self.log_variances[...] = numpy.asarray(state["log_variances"], dtype=numpy.float64)
