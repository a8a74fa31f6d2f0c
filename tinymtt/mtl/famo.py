"""FAMO: fast adaptive multitask optimization (Liu, Feng, Stone & Liu, NeurIPS 2023).

The goal: every task's *log* loss should fall at the same rate (log, so the
scale of a loss does not matter). The gradient methods balance the rates
from the T task gradients; FAMO learns the balance from the losses alone, so a
step costs one backward pass, as the plain sum does, plus one forward pass.

The update. With logits ξ (T,) and z = softmax(ξ), the step follows the
gradient of Σ_i z_i log(L_i + ε) / c, with c = Σ_j z_j / (L_j + ε) held constant:

    w_i = ∂/∂L_i = z_i / (c (L_i + ε))         (Σ_i w_i (L_i + ε) = 1)
    d   = Σ_i w_i ∇L_i = (1/c) Σ_i z_i ∇log(L_i + ε)

The logits. After the step, on the same batch, each task's log loss fell by

    δ_i = log(L_i(θ_t) + ε) − log(L_i(θ_{t+1}) + ε)

and ξ takes one step of Adam (learning rate ``lr``, L2 decay ``gamma``: it
pulls ξ back to 0, towards equal weights) on the gradient of z(ξ)·δ:

    ∂(z·δ)/∂ξ_k = Σ_i δ_i ∂z_i/∂ξ_k = z_k (δ_k − z·δ)        (the softmax's Jacobian, diag(z) − z zᵀ)

A task whose log loss fell more than the z-weighted mean loses weight, one
that fell less gains it: the weights move towards equal rates of decrease.
The paper derives this as a step on the dual of max_d min_i (the rate of
log L_i) − ½‖d‖², with δ the observed stand-in for the dual's gradient.

As LibMTL's ``FAMO`` (FAMO_w_lr = 0.025, FAMO_w_gamma = 1e-3, the loss floor
min_losses = 0, ε = 1e-8, torch.optim.Adam with weight_decay) and the
authors' code: δ is measured on the *same* batch after the optimizer step,
which costs one forward pass (the trainer's ``losses_after_step``). A task
not counted in the batch gets weight 0, and only tasks counted in both
passes enter z and δ for the logits' step. The logits and their Adam state
are the strategy's state.
"""

from __future__ import annotations

import numpy

from ..optim import Adam
from ..validation import check_number
from .base import Strategy, task_vector

EPSILON = 1e-8


# -- the rule ----------------------------------------------------------------------
def softmax(logits):
    scores = numpy.exp(logits - logits.max())
    return scores / scores.sum()


def famo_weights(logits, losses):
    """w (T,) host float64: w_i = z_i / (c (L_i + ε)), z = softmax(ξ), c = Σ_j z_j / (L_j + ε)."""
    z = softmax(numpy.asarray(logits, dtype=numpy.float64))
    ratios = z / (numpy.asarray(losses, dtype=numpy.float64) + EPSILON)
    return ratios / ratios.sum()


def famo_logit_gradient(logits, decrease):
    """∂(softmax(ξ)·δ)/∂ξ (T,) = z ⊙ (δ − z·δ), from logits ξ (T,) and the log-loss decreases δ (T,)."""
    z = softmax(numpy.asarray(logits, dtype=numpy.float64))
    decrease = numpy.asarray(decrease, dtype=numpy.float64)
    return z * (decrease - z @ decrease)


def log_decrease(before, after):
    """δ_i = log(L_i before + ε) − log(L_i after + ε)."""
    return numpy.log(numpy.asarray(before) + EPSILON) - numpy.log(numpy.asarray(after) + EPSILON)


# -- the strategy --------------------------------------------------------------------
class FAMO(Strategy):
    """FAMO: weights from learned logits; the logits move with the same batch's log-loss decrease."""

    name = "famo"
    needs_losses_after_step = True
    options = {"lr": 0.025, "gamma": 0.001}

    def __init__(self, num_tasks, *, kinds=None, lr=0.025, gamma=0.001):
        super().__init__(num_tasks, kinds=kinds)
        self.logits = numpy.zeros(self.num_tasks)
        self.optimizer = Adam({"logits": self.logits}, lr=check_number(lr, "lr", low_open=True),
                              weight_decay=check_number(gamma, "gamma (the logits' L2 decay)"))
        self._before = self._after = None                # this step's losses, until after_step

    def weights(self):
        return softmax(self.logits)

    def task_weights(self, losses, counted):
        losses, counted = self.vectors(losses, counted)
        self.last_weights = numpy.zeros(self.num_tasks)
        if counted.any():
            self.last_weights[counted] = famo_weights(self.logits[counted], numpy.maximum(losses[counted], 0.0))
        self._before, self._after = (losses, counted), None
        return self.last_weights

    def losses_after_step(self, losses, counted):
        self._after = (task_vector(losses, self.num_tasks, "losses"), task_vector(counted, self.num_tasks,
                                                                                  "counted", bool))

    def after_step(self, losses, counted):
        before, after, self._before, self._after = self._before, self._after, None, None
        if before is None or after is None:
            raise RuntimeError("FAMO.after_step needs this step's losses before and after the optimizer step: "
                               "call task_weights, then losses_after_step (the Trainer does)")
        both = before[1] & after[1]
        gradient = numpy.zeros(self.num_tasks)
        if both.any():
            decrease = log_decrease(numpy.maximum(before[0][both], 0.0), numpy.maximum(after[0][both], 0.0))
            gradient[both] = famo_logit_gradient(self.logits[both], decrease)
        self.optimizer.step({"logits": gradient})

    def state_dict(self):
        return {"logits": self.logits.copy(),
                **{f"optimizer.{key}": value for key, value in self.optimizer.state_dict().items()}}

    def load_state_dict(self, state):
        self.optimizer.load_state_dict({key[len("optimizer."):]: value for key, value in state.items()
                                        if key.startswith("optimizer.")})
        self.logits[...] = numpy.asarray(state["logits"], dtype=numpy.float64)
