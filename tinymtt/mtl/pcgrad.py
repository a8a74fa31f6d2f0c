"""PCGrad: gradient surgery for multi-task learning (Yu et al., NeurIPS 2020).

Two task gradients conflict when g_i·g_j < 0: a step along their sum helps one
task less than it could, or hurts it. PCGrad removes, from each task's
gradient, its component along every gradient it conflicts with (Algorithm 1):

    for each task i:  g_i^PC = g_i
        for each j ≠ i, in a random order:
            if g_i^PC·g_j < 0:   g_i^PC ← g_i^PC − (g_i^PC·g_j / ‖g_j‖²) g_j
    d = Σ_i g_i^PC

The projection is against the *original* g_j (not g_j^PC), as in the paper.
After it, g_i^PC·g_j = g_i^PC·g_j − (g_i^PC·g_j/‖g_j‖²)‖g_j‖² = 0: the conflict
is gone (a later projection, against another g_k, may move g_i^PC again, which
is why the order is shuffled). Gradients that conflict with nothing pass
through unchanged, so with no conflict at all d = Σ_i g_i, the plain sum.

Written on the Gram matrix (tinymtt.mtl.simplex): every g_i^PC stays a
combination of the original gradients, g_i^PC = Σ_m A_im g_m, starting from
A = I. The inner product the test needs is g_i^PC·g_j = Σ_m A_im K_mj = (A K)_ij,
and the projection is A_ij ← A_ij − (A K)_ij / K_jj. Step k of the loop treats
every task i at once (task i against its k-th partner), so the loop runs over
the T − 1 partners, never over the tasks, and touches only T×T numbers; one
matmul A @ G gives the projected gradients at the end.
"""

from __future__ import annotations

import numpy

from ..backend import array_module
from ..validation import check_integer
from .base import GradientCombination
from .simplex import combine_rows, gram_matrix


def partner_order(num_tasks, rng=None):
    """(T, T−1) int: row i lists the tasks j ≠ i in the order task i is projected against them.

    rng None: increasing j (a fixed order); a numpy.random.Generator or an int seed:
    a random permutation per row (the paper's shuffle; argsort of uniform draws).
    """
    keys = numpy.tile(numpy.arange(num_tasks, dtype=numpy.float64), (num_tasks, 1))
    if rng is not None:
        rng = rng if isinstance(rng, numpy.random.Generator) else numpy.random.default_rng(rng)
        keys = rng.random((num_tasks, num_tasks))
    keys[numpy.arange(num_tasks), numpy.arange(num_tasks)] = numpy.inf      # i itself sorts last, then dropped
    return numpy.argsort(keys, axis=1, kind="stable")[:, :num_tasks - 1]


def pcgrad_matrix(gram, rng=None):
    """A (T, T) host float64 with g_i^PC = Σ_m A_im g_m, from the Gram matrix K (module docstring)."""
    num_tasks = gram.shape[0]
    order = partner_order(num_tasks, rng)
    rows = numpy.arange(num_tasks)
    squared = gram.diagonal()
    combination = numpy.eye(num_tasks)
    for step in range(num_tasks - 1):
        partner = order[:, step]                                   # task i's partner j at this step
        dots = (combination @ gram)[rows, partner]                 # g_i^PC·g_j for every i at once
        conflict = (dots < 0) & (squared[partner] > 0)             # a zero g_j conflicts with nothing
        coefficient = numpy.zeros(num_tasks)
        coefficient[conflict] = dots[conflict] / squared[partner][conflict]
        combination[rows, partner] -= coefficient                  # g_i^PC ← g_i^PC − (g_i^PC·g_j/‖g_j‖²) g_j
    return combination


def pcgrad_projected(grads, rng=None):
    """The projected gradients g_i^PC, (T, P) in the dtype and on the device of ``grads``.

    grads: (T, P) float, one row per task (a zero row -- a task absent from the
    batch -- conflicts with nothing and stays zero). rng: None for the fixed
    order j = 0, 1, ..., a numpy Generator or an int seed for the paper's random order.
    """
    return combine_rows(pcgrad_matrix(gram_matrix(grads), rng), grads)        # A @ G


def pcgrad_coefficients(grads, rng=None):
    """a (T,) with pcgrad(grads) = a @ G -- the column sums of A -- in the dtype and on the device of ``grads``."""
    return array_module(grads).asarray(pcgrad_matrix(gram_matrix(grads), rng).sum(axis=0), dtype=grads.dtype)


def pcgrad(grads, rng=None):
    """d = Σ_i g_i^PC (P,): the PCGrad update direction, in the dtype and on the device of ``grads``.

    The sum, as in the paper (not the mean): with no conflict d equals the
    gradient of L = Σ_i L_i, the fixed strategy's update with every weight 1.
    """
    return combine_rows(pcgrad_matrix(gram_matrix(grads), rng).sum(axis=0), grads)


# -- the strategy --------------------------------------------------------------------
class PCGrad(GradientCombination):
    """PCGrad; with ``shuffle`` (default) the partner order of step k is drawn from seed (``seed``, k)."""

    name = "pcgrad"
    options = {"seed": 0, "shuffle": True}

    def __init__(self, num_tasks, *, kinds=None, seed=0, shuffle=True):
        super().__init__(num_tasks, kinds=kinds)
        self.seed = check_integer(seed, "seed")
        if not isinstance(shuffle, (bool, numpy.bool_)):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        self.shuffle, self.calls = bool(shuffle), 0

    def solve(self, gram, losses=None):
        rng = numpy.random.default_rng([self.seed, self.calls]) if self.shuffle else None
        self.calls += 1
        return pcgrad_matrix(gram, rng).sum(axis=0)

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = check_integer(int(state["calls"]), "state['calls']")
