"""DB-MTL: dual balancing (Lin, Ye, Zhang, Zhang & Kwok, 2023): log losses, then equal gradient norms.

Two imbalances, two fixes.

1. Loss scale. Train on log L_i instead of L_i:

       ∇ log(L_i + ε) = ∇L_i / (L_i + ε)

   Multiplying a task's loss by any c > 0 adds log c, a constant, so the
   gradient does not change: the update is invariant to the scale of each
   loss (up to ε = 1e-8). In the trainer this is the task weight
   w_i = 1/(L_i + ε) (∂ log L_i / ∂L_i): the rows of G are then ∇ log L_i,
   and each head gets the gradient of its task's log loss.

2. Gradient scale. Keep an exponential moving average of each task's
   (log-loss) gradient and rescale every average to the largest norm:

       ĝ_i ← g_i + β_t (ĝ_i − g_i)          (= β_t ĝ_i + (1 − β_t) g_i; ĝ_i = 0 before the first step)
       β_t = β / t^σ                        (t: the task's step count; β = 0.9, σ = 0: a plain EMA)
       α_i = max_j ‖ĝ_j‖ / ‖ĝ_i‖,   d = Σ_i α_i ĝ_i

   Every task then pulls with the same strength, that of the strongest one;
   the largest norm keeps the step as large as the largest gradient, where
   the mean or smallest would shrink it.

As LibMTL's ``DB_MTL`` (DB_beta = 0.9, DB_beta_sigma = 0, the ε of the log
and the 1e-8 under ‖ĝ_i‖). The averages are T×P numbers on the gradients'
device; they are part of the state (``state_dict``), so a resumed run goes on
with them. A task not counted in a batch keeps its average unchanged and
takes no part in that step's d. ``last_weights`` holds α.
"""

from __future__ import annotations

import numpy

from ..backend import array_module, to_numpy
from ..validation import check_number
from .base import Strategy

EPSILON = 1e-8


# -- the rule ----------------------------------------------------------------------
def dbmtl_average(average, grads, beta):
    """ĝ ← g + β (ĝ − g), (T, P) for the averages and the new gradients (the rows to update)."""
    return grads + beta * (average - grads)


def dbmtl_scales(norms):
    """α (T,) host float64: α_i = max_j n_j / (n_i + 1e-8), from the norms n_i = ‖ĝ_i‖ (T,)."""
    norms = numpy.asarray(norms, dtype=numpy.float64)
    return norms.max() / (norms + EPSILON)


def dbmtl(average):
    """d = Σ_i α_i ĝ_i (P,) from the averages ĝ (T, P): every row rescaled to the largest norm, then summed."""
    xp = array_module(average)
    alpha = dbmtl_scales(numpy.sqrt(numpy.asarray(to_numpy((average * average).sum(axis=1)), dtype=numpy.float64)))
    return xp.asarray(alpha, dtype=average.dtype) @ average, alpha


# -- the strategy --------------------------------------------------------------------
class DualBalancing(Strategy):
    """DB-MTL: w_i = 1/(L_i + ε) (the log loss), then the EMA-averaged gradients scaled to the largest norm."""

    name = "dbmtl"
    needs_task_gradients = True
    options = {"beta": 0.9, "sigma": 0.0}

    def __init__(self, num_tasks, *, kinds=None, beta=0.9, sigma=0.0):
        super().__init__(num_tasks, kinds=kinds)
        self.beta = check_number(beta, "beta (the EMA factor)", high=1.0, high_open=True)
        self.sigma = check_number(sigma, "sigma (β_t = β / t^σ)")
        self.counts = numpy.zeros(self.num_tasks)          # t per task
        self.average = None                                 # ĝ (T, P), made at the first combine

    def task_weights(self, losses, counted):
        losses, counted = self.vectors(losses, counted)
        self.last_weights = numpy.where(counted, 1.0 / (numpy.maximum(losses, 0.0) + EPSILON), 0.0)
        return self.last_weights

    def combine(self, task_grads, losses, counted):
        _, counted = self.vectors(losses, counted)
        xp = array_module(task_grads)
        if self.average is None:
            self.average = xp.zeros_like(task_grads)
        self.average = xp.asarray(self.average, dtype=task_grads.dtype)      # a resumed state comes from the host
        used = numpy.flatnonzero(counted)
        alpha = numpy.zeros(self.num_tasks)
        if not used.size:
            self.last_weights = alpha
            return xp.zeros(task_grads.shape[1], dtype=task_grads.dtype)
        self.counts[used] += 1
        betas = self.beta / self.counts[used] ** self.sigma                 # β_t per task
        rows = xp.asarray(used)
        self.average[rows] = dbmtl_average(self.average[rows], task_grads[rows],
                                           xp.asarray(betas[:, None], dtype=task_grads.dtype))
        update, alpha[used] = dbmtl(self.average[rows])
        self.last_weights = alpha
        return update

    def state_dict(self):
        state = {"counts": self.counts.copy()}
        if self.average is not None:
            state["average"] = numpy.array(to_numpy(self.average))
        return state

    def load_state_dict(self, state):
        self.counts = numpy.array(state["counts"], dtype=numpy.float64)
        self.average = numpy.array(state["average"]) if "average" in state else None
