"""Random loss weighting (Lin, Ye, Xu, Shi & Zhang, TMLR 2022): a new random weight vector at every step.

RLW asks how much a balancing method does beyond chance. At every step it
draws the loss weights from a distribution p(λ) and takes the gradient of

    L = Σ_i λ_i L_i,    λ = softmax(z),  z ~ N(0, I_T)        (the paper's default p)

So λ_i > 0 and Σ_i λ_i = 1; on average every task gets the same weight
E[λ_i] = 1/T, but the weights of one step can differ by a large factor (for
T = 2, λ_1/λ_2 = exp(z_1 − z_2) with z_1 − z_2 ~ N(0, 2)). The paper's
argument: with random weights the expected update is the plain mean's, and
the noise helps the shared parameters leave sharp minima; a method that does
not beat RLW on a benchmark has not shown that its balancing helps. The
gradient of L with respect to L_i is λ_i, and λ does not depend on θ, so the
update is an ordinary backward pass with dlosses = λ (no task gradients).

As LibMTL's ``RLW`` (F.softmax(torch.randn(T))): the weights sum to 1, not to
T as the fixed strategy's do; Adam hardly notices a constant factor.
Reproducible: the z of step k comes from the generator seeded with
(``seed``, k), so the state is the step count k alone and a resumed run draws
what the uninterrupted run drew. A task not counted in a batch gets weight 0;
the softmax runs over the counted tasks only (so the counted weights still sum
to 1), and z is always drawn for all T tasks (the stream does not depend on
which tasks a batch holds).
"""

from __future__ import annotations

import numpy

from ..validation import check_integer
from .base import Strategy


# -- the rule ----------------------------------------------------------------------
def rlw_weights(normal, counted=None):
    """λ (T,) = softmax(z) over the counted tasks, 0 elsewhere; ``normal``: z (T,), counted: (T,) bool or None."""
    normal = numpy.asarray(normal, dtype=numpy.float64)
    counted = numpy.ones(normal.shape, dtype=bool) if counted is None else numpy.asarray(counted, dtype=bool)
    if not counted.any():
        return numpy.zeros(normal.shape)
    logits = numpy.where(counted, normal, -numpy.inf)
    scores = numpy.exp(logits - logits.max())                  # shifted softmax: no overflow; exp(−inf) = 0
    return scores / scores.sum()


def rlw_draw(seed, step, num_tasks):
    """z (T,) ~ N(0, I), from the generator seeded with (seed, step): the same numbers for the same step."""
    return numpy.random.default_rng([seed, step]).standard_normal(num_tasks)


# -- the strategy --------------------------------------------------------------------
class RandomLossWeighting(Strategy):
    """RLW: λ = softmax(z), z ~ N(0, I) drawn anew every step from (``seed``, step)."""

    name = "rlw"
    options = {"seed": 0}

    def __init__(self, num_tasks, *, kinds=None, seed=0):
        super().__init__(num_tasks, kinds=kinds)
        self.seed = check_integer(seed, "seed", low=0)
        self.calls = 0                                   # how many steps have been taken: the next draw's index

    def task_weights(self, losses, counted):
        _, counted = self.vectors(losses, counted)
        self.last_weights = rlw_weights(rlw_draw(self.seed, self.calls, self.num_tasks), counted)
        return self.last_weights

    def weights(self):
        return rlw_weights(rlw_draw(self.seed, self.calls, self.num_tasks))

    def after_step(self, losses, counted):
        self.calls += 1

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = check_integer(int(state["calls"]), "state['calls']", low=0)
