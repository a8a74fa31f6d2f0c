"""MGDA: the min-norm point of the convex hull of the task gradients (Sener & Koltun, NeurIPS 2018).

A shared-parameter step d is a common descent direction when g_i·d > 0 for
every task. The multiple-gradient descent algorithm (Désidéri) takes the point
of the convex hull of the task gradients closest to the origin:

    α* = argmin_{α ∈ Δ} ‖Σ_i α_i g_i‖²,   Δ = {α ≥ 0, Σ_i α_i = 1},   d = Σ_i α*_i g_i

Either d = 0 -- no common descent direction exists, the point is Pareto
stationary -- or d decreases every task: the optimality condition of the
projection onto a convex set gives g_i·d ≥ ‖d‖² > 0 for every i (with
equality on the tasks where α*_i > 0).

Two tasks, closed form. With γ the weight of g_1,
    f(γ) = ‖g_2 + γ(g_1 − g_2)‖²,  f'(γ) = 2(g_2 + γ(g_1 − g_2))·(g_1 − g_2) = 0
    ⇒ γ = (g_2 − g_1)·g_2 / ‖g_1 − g_2‖²,  clipped to [0, 1]
(any γ when g_1 = g_2; we take ½). More tasks: Frank–Wolfe on the Gram matrix
(tinymtt.mtl.simplex) with f(α) = αᵀKα, ∇f = 2Kα, and the exact line search
along a direction u: f(α + γu) is a parabola in γ with its minimum at
γ = −αᵀKu / uᵀKu (clipped to the allowed step).

Gradient normalisation (the option ``normalization``, as Sener & Koltun's
code and LibMTL's ``mgda_gn``): solve the min-norm problem for the rescaled
gradients g_i/n_i and return their combination,

    d = Σ_i α*_i g_i / n_i,   α* the min-norm weights of the g_i/n_i (Gram matrix K_ij / (n_i n_j))
    "none": n_i = 1 (the default: the paper's problem)   "l2": n_i = ‖g_i‖ (every gradient a unit vector)
    "loss": n_i = L_i (g_i/L_i = ∇log L_i)               "loss+": n_i = L_i ‖g_i‖

With "l2" or "loss+" every task's gradient counts with length 1 (times 1/L_i),
so a task with a small gradient is no longer the min-norm point by itself;
"loss" makes MGDA invariant to the scale of each loss (∇log(cL) = ∇log L).

Scale: with "none" we return d = Σ α*_i g_i as it is. Implementations often rescale it --
Sener & Koltun's code normalises each g_i first (by its norm, or by the loss),
others multiply d by T to match the size of the sum Σ g_i. We do not: the
size of the min-norm point is the algorithm's own signal (it shrinks to 0 at
a Pareto-stationary point, where the tasks stop agreeing on any direction),
a normalisation changes which point is "min-norm" (it is not the paper's
problem any more), and the trainer's Adam is invariant to a constant scale.
So MGDA's d is no longer than the shortest g_i -- well below the sum Σ g_i
that the fixed strategy takes; keep that in mind when reading gradient norms.
"""

from __future__ import annotations

import numpy

from ..backend import array_module
from ..validation import check_integer
from .base import GradientCombination
from .simplex import combine_rows, frank_wolfe, gram_matrix


def min_norm_pair(aa, ab, bb) -> float:
    """γ ∈ [0, 1] minimising ‖γ a + (1 − γ) b‖², from a·a, a·b, b·b (½ when a = b)."""
    denominator = aa - 2.0 * ab + bb                  # ‖a − b‖²
    if denominator <= 0.0:
        return 0.5
    return float(min(max((bb - ab) / denominator, 0.0), 1.0))


ITERATIONS = 1000      # the most Frank–Wolfe iterations; the loop stops at the gap (tinymtt.mtl.simplex)
NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def min_norm_weights(gram, iterations=ITERATIONS):
    """α* (T,) host float64 on the simplex minimising αᵀKα, from the Gram matrix K (T, T)."""
    num_tasks = gram.shape[0]
    if num_tasks == 1:
        return numpy.ones(1)
    if num_tasks == 2:
        gamma = min_norm_pair(gram[0, 0], gram[0, 1], gram[1, 1])
        return numpy.array([gamma, 1.0 - gamma])

    def line_search(alpha, direction, step_max):
        curvature = float(direction @ gram @ direction)           # uᵀKu
        slope = float(alpha @ gram @ direction)                   # αᵀKu (half f's slope at γ = 0)
        if curvature <= 0.0:                                      # f is flat along u
            return step_max if slope < 0 else 0.0
        return min(max(-slope / curvature, 0.0), step_max)

    return frank_wolfe(lambda alpha: 2.0 * (gram @ alpha), line_search, num_tasks, iterations,
                       scale=float(gram.diagonal().max()))


def mgda_normalizers(gram, losses, normalization):
    """n (T,) host float64: 1, ‖g_i‖, L_i or L_i ‖g_i‖ (module docstring); a zero n_i is taken as 1."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    norms = numpy.sqrt(numpy.maximum(numpy.asarray(gram, dtype=numpy.float64).diagonal(), 0.0))
    if normalization in ("loss", "loss+") and losses is None:
        raise ValueError(f"normalization {normalization!r} needs the task losses, got losses=None")
    values = {"none": lambda: numpy.ones(len(norms)), "l2": lambda: norms,
              "loss": lambda: numpy.asarray(losses, dtype=numpy.float64),
              "loss+": lambda: numpy.asarray(losses, dtype=numpy.float64) * norms}[normalization]()
    return numpy.where(values > 0, values, 1.0)


def mgda_coefficients(gram, losses=None, normalization="none", iterations=ITERATIONS):
    """a (T,) host float64 with d = a @ G: a_i = α*_i / n_i, α* the min-norm weights of the g_i / n_i."""
    scale = mgda_normalizers(gram, losses, normalization)
    return min_norm_weights(gram / numpy.outer(scale, scale), iterations) / scale


def mgda_weights(grads, iterations=ITERATIONS):
    """α* (T,): the min-norm convex combination of the rows of ``grads`` (T, P), in its dtype and device."""
    iterations = check_integer(iterations, "iterations", low=1)
    alpha = min_norm_weights(gram_matrix(grads), iterations)
    return array_module(grads).asarray(alpha, dtype=grads.dtype)


def mgda(grads, iterations=ITERATIONS):
    """d = Σ_i α*_i g_i (P,): the min-norm point itself, not rescaled (module docstring)."""
    iterations = check_integer(iterations, "iterations", low=1)
    return combine_rows(min_norm_weights(gram_matrix(grads), iterations), grads)


# -- the strategy --------------------------------------------------------------------
class MGDA(GradientCombination):
    """MGDA: the min-norm point of the gradients' convex hull, not rescaled (module docstring says why);
    ``normalization`` none | l2 | loss | loss+ divides each gradient first."""

    name = "mgda"
    options = {"iterations": ITERATIONS, "normalization": "none"}

    def __init__(self, num_tasks, *, kinds=None, iterations=ITERATIONS, normalization="none"):
        super().__init__(num_tasks, kinds=kinds)
        self.iterations = check_integer(iterations, "iterations", low=1)
        mgda_normalizers(numpy.eye(1), [1.0], normalization)              # a bad name fails here
        self.normalization = normalization

    def solve(self, gram, losses=None):
        return mgda_coefficients(gram, losses, self.normalization, self.iterations)
