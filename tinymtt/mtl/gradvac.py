"""GradVac: gradient vaccine (Wang, Tsvetkov, Firat & Cao, ICLR 2021): PCGrad with learned target cosines.

PCGrad (tinymtt.mtl.pcgrad) acts only when two gradients conflict, and then
makes them exactly orthogonal: its target cosine is 0. GradVac keeps, for
every ordered pair (i, j), a target φ̂_ij -- an exponential moving average of
the cosines seen so far -- and moves g_i towards g_j whenever their cosine
falls below it:

    for each task i, and each j ≠ i in a random order:
        φ_ij = cos(g_i^GV, g_j)
        if φ_ij < φ̂_ij:   g_i^GV ← g_i^GV + w g_j,
                          w = ‖g_i^GV‖ (φ̂_ij √(1 − φ_ij²) − φ_ij √(1 − φ̂_ij²)) / (‖g_j‖ √(1 − φ̂_ij²))
        φ̂_ij ← (1 − β) φ̂_ij + β φ_ij
    d = Σ_i g_i^GV

Why w: in the plane of g_i and g_j, adding w g_j turns g_i until its cosine
with g_j is exactly φ̂_ij (the law of sines in the triangle g_i, w g_j,
g_i + w g_j). With φ̂_ij = 0 and φ_ij < 0 this is PCGrad's projection; with
φ̂ = 0 everywhere (the start) GradVac *is* PCGrad. As the targets learn the
usual cosine of each pair, GradVac also acts on pairs that agree less than
usual, not only on conflicts.

On the Gram matrix, as PCGrad: g_i^GV = Σ_m A_im g_m starting from A = I, with
g_i^GV·g_j = (A K)_ij and ‖g_i^GV‖² = (A K Aᵀ)_ii; the step A_ij += w. Step k of
the loop treats every task i at once against its k-th partner, so only T×T
numbers are touched and one matmul (1ᵀA) G gives d.

As LibMTL's ``GradVac`` (whole model, group_type 0; GradVac_beta = 0.5; the
1e-8 under the divisions): the EMA is updated with the φ_ij measured before
the move. The partner order of step k is drawn from the seed (``seed``, k);
the targets and k are the strategy's state. A task not counted in a batch is
left out of the step; its targets keep their values.
"""

from __future__ import annotations

import numpy

from ..validation import check_integer, check_number
from .base import GradientCombination
from .pcgrad import partner_order
from .simplex import combine_rows, gram_matrix

TINY = 1e-8


# -- the rule ----------------------------------------------------------------------
def gradvac_matrix(gram, targets, beta, rng=None):
    """(A (T, T), new targets (T, T)) host float64: g_i^GV = Σ_m A_im g_m, from K and the targets φ̂."""
    num_tasks = gram.shape[0]
    order = partner_order(num_tasks, rng)
    rows = numpy.arange(num_tasks)
    norms = numpy.sqrt(numpy.maximum(gram.diagonal(), 0.0))
    targets = numpy.array(targets, dtype=numpy.float64)
    combination = numpy.eye(num_tasks)
    for step in range(num_tasks - 1):
        partner = order[:, step]                                          # task i's partner j at this step
        dots = (combination @ gram)[rows, partner]                        # g_i^GV·g_j
        own = numpy.sqrt(numpy.maximum(numpy.einsum("im,mn,in->i", combination, gram, combination), 0.0))
        cosine = dots / (own * norms[partner] + TINY)                     # φ_ij
        target = targets[rows, partner]                                   # φ̂_ij
        below = cosine < target
        root = numpy.sqrt(numpy.maximum(1.0 - cosine ** 2, 0.0))
        target_root = numpy.sqrt(numpy.maximum(1.0 - target ** 2, 0.0))
        weight = own * (target * root - cosine * target_root) / (norms[partner] * target_root + TINY)
        combination[rows, partner] += numpy.where(below, weight, 0.0)      # g_i^GV ← g_i^GV + w g_j
        targets[rows, partner] = (1.0 - beta) * target + beta * cosine
    return combination, targets


def gradvac(grads, targets=None, beta=0.5, rng=None):
    """(d (P,), new targets (T, T)): the GradVac update from grads (T, P); targets default 0 (PCGrad's)."""
    gram = gram_matrix(grads)
    targets = numpy.zeros_like(gram) if targets is None else targets
    combination, targets = gradvac_matrix(gram, targets, beta, rng)
    return combine_rows(combination.sum(axis=0), grads), targets


# -- the strategy --------------------------------------------------------------------
class GradVac(GradientCombination):
    """GradVac: EMA target cosines φ̂ (decay ``beta``); partner order from (``seed``, step) when ``shuffle``."""

    name = "gradvac"
    options = {"beta": 0.5, "seed": 0, "shuffle": True}

    def __init__(self, num_tasks, *, kinds=None, beta=0.5, seed=0, shuffle=True):
        super().__init__(num_tasks, kinds=kinds)
        self.beta = check_number(beta, "beta (the EMA factor of the target cosines)", high=1.0)
        self.seed = check_integer(seed, "seed")
        if not isinstance(shuffle, (bool, numpy.bool_)):
            raise ValueError(f"shuffle must be true or false, got {shuffle!r}")   # noqa: TRY004 (a bad option value)
        self.shuffle, self.calls = bool(shuffle), 0
        self.targets = numpy.zeros((self.num_tasks, self.num_tasks))

    def combine(self, task_grads, losses, counted):
        _, counted = self.vectors(losses, counted)
        used = numpy.flatnonzero(counted)
        coefficients = numpy.zeros(self.num_tasks)
        if used.size:
            rng = numpy.random.default_rng([self.seed, self.calls]) if self.shuffle else None
            pair = numpy.ix_(used, used)
            combination, self.targets[pair] = gradvac_matrix(gram_matrix(task_grads, "task_grads")[pair],
                                                             self.targets[pair], self.beta, rng)
            coefficients[used] = combination.sum(axis=0)
        self.calls += 1
        self.last_weights = coefficients
        return combine_rows(coefficients, task_grads)

    def state_dict(self):
        return {"calls": self.calls, "targets": self.targets.copy()}

    def load_state_dict(self, state):
        self.calls = check_integer(int(state["calls"]), "state['calls']")
        self.targets = numpy.array(state["targets"], dtype=numpy.float64)
