"""Nash-MTL: multi-task learning as a bargaining game (Navon, Shamsian, Achituve, Maron, Kawaguchi,
Chechik & Fetaya, ICML 2022).

The tasks bargain over the step d, each gaining g_i·d to first order. The
Nash bargaining solution maximises the product of the gains, Σ_i log(g_i·d),
in a ball ‖d‖ ≤ ε. At its optimum the gradient Σ_i g_i/(g_i·d) is parallel to
d; written d = Σ_i α_i g_i this gives (the paper's Theorem 5.1)

    g_i·d = 1/α_i  for every i,   that is   K α = 1/α,  α > 0      (K = G Gᵀ, the Gram matrix)

So a task with a large gradient gets a small α_i. Since α_i(Kα)_i = 1,
‖d‖² = αᵀKα = T: the exact solution has length √T whatever the gradients.

Solving it. Kα = 1/α is the stationarity condition of the convex function

    f(α) = ½ αᵀKα − Σ_i log α_i,     ∇f = Kα − 1/α,     ∇²f = K + diag(1/α²) ≻ 0

and we minimise f by damped Newton steps: Δ = −(∇²f)⁻¹∇f, a step t ≤ 1 that
keeps α > 0 (at most 0.99 of the way to the boundary), halved until f
decreases enough (Armijo). Newton converges quadratically near the solution;
the stop is max_i |α_i (Kα)_i − 1| ≤ ``tolerance`` (1e-6: every task's gain
g_i·d within a millionth of 1/α_i; the authors' code stops at ‖Kα − 1/α‖ < 1e-3). The authors' code uses
cvxpy (a sequence of convex problems, at most 20); this is the same
solution, with no solver to install.

When it fails. f has a minimum if and only if no α ≥ 0, α ≠ 0 has Gᵀα = 0,
that is, when 0 is not in the convex hull of the task gradients. At a
Pareto-stationary point (or with a zero gradient) f is unbounded below, α
grows without limit, and no bargaining solution exists. The solve then stops
after ``iterations`` Newton steps and reports it: ``converged`` is False;
the strategy keeps the last iterate (finite, positive), counts the failure
(``failures``, saved with the state) and warns at the first one. A task with
a zero gradient gains nothing from any d; it is left out (α_i = 0).

Scale, as the authors' code does: K is divided by its Frobenius norm ‖K‖_F
before the solve. If α solves Kα = 1/α, then β = √‖K‖_F α solves
(K/‖K‖_F)β = 1/β, and d = Σ β_i g_i has length √(T ‖K‖_F): the step grows
and shrinks with the gradients, as other methods' steps do.

Invariance: scaling one task's gradient, g_i → c g_i (a loss multiplied by c),
turns K into D K D with D = diag(1, .., c, .., 1), and α' = D⁻¹α solves the new
equation: the exact d = Σ α'_i g'_i does not change at all. With the
normalisation d is multiplied by √(‖K'‖_F/‖K‖_F): the direction is invariant,
the length is not.

Heads: here each head gets its own task's gradient, unweighted (the trainer's
rule for every gradient method). LibMTL and the authors' code back-propagate
Σ β_i L_i, so they also scale head i's gradient by β_i; with Adam, a per-head
factor that changes slowly from step to step changes the head's steps little.
"""

from __future__ import annotations

import math
import warnings

import numpy

from ..validation import check_integer, check_number
from .base import GradientCombination
from .simplex import combine_rows, gram_matrix


# -- the rule ----------------------------------------------------------------------
def bargaining_objective(alpha, gram):
    """f(α) = ½ αᵀKα − Σ log α_i (+inf outside α > 0)."""
    if (alpha <= 0).any():
        return math.inf
    return 0.5 * float(alpha @ gram @ alpha) - float(numpy.log(alpha).sum())


def solve_bargaining(gram, iterations=100, tolerance=1e-6):
    """(α (T,) > 0, converged, residual) with Kα = 1/α by damped Newton on f (module docstring).

    gram: (T, T) symmetric positive semi-definite, every diagonal entry > 0.
    residual = max_i |α_i (Kα)_i − 1|.
    """
    gram = numpy.asarray(gram, dtype=numpy.float64)
    alpha = 1.0 / numpy.sqrt(gram.diagonal())                # exact when the gradients are orthogonal
    residual = math.inf
    for iteration in range(iterations + 1):
        product = gram @ alpha
        residual = float(numpy.abs(alpha * product - 1.0).max())
        if residual <= tolerance:
            return alpha, True, residual
        if iteration == iterations:
            break
        gradient = product - 1.0 / alpha
        hessian = gram + numpy.diag(1.0 / (alpha * alpha))
        step = -numpy.linalg.solve(hessian, gradient)
        shrinking = step < 0
        t = min(1.0, 0.99 * float((-alpha[shrinking] / step[shrinking]).min())) if shrinking.any() else 1.0
        value, slope = bargaining_objective(alpha, gram), float(gradient @ step)
        for _halving in range(60):                          # Armijo: f falls by at least 1e-4 · t · slope
            if bargaining_objective(alpha + t * step, gram) <= value + 1e-4 * t * slope:
                break
            t *= 0.5
        alpha = alpha + t * step
    return alpha, False, residual


def nashmtl_coefficients(gram, iterations=100, tolerance=1e-6):
    """(β (T,) host float64, converged, residual): d = β @ G, β = √‖K‖_F · α (module docstring)."""
    gram = numpy.asarray(gram, dtype=numpy.float64)
    beta = numpy.zeros(gram.shape[0])
    used = numpy.flatnonzero(gram.diagonal() > 0)            # a zero gradient is left out
    if used.size == 0:
        return beta, True, 0.0
    sub = gram[numpy.ix_(used, used)]
    scale = float(numpy.linalg.norm(sub))                    # ‖K‖_F
    beta[used], converged, residual = solve_bargaining(sub / scale, iterations, tolerance)
    return beta, converged, residual


def nashmtl(grads, iterations=100, tolerance=1e-6):
    """The Nash-MTL update d = Σ β_i g_i (P,) from grads (T, P), in their dtype and on their device."""
    beta, _, _ = nashmtl_coefficients(gram_matrix(grads), iterations, tolerance)
    return combine_rows(beta, grads)


# -- the strategy --------------------------------------------------------------------
class NashMTL(GradientCombination):
    """Nash-MTL: d = Σ β_i g_i with (K/‖K‖_F)β = 1/β; a solve that does not converge is counted and warned."""

    name = "nashmtl"
    options = {"iterations": 100, "tolerance": 1e-6}

    def __init__(self, num_tasks, *, kinds=None, iterations=100, tolerance=1e-6):
        super().__init__(num_tasks, kinds=kinds)
        self.iterations = check_integer(iterations, "iterations", low=1)
        self.tolerance = check_number(tolerance, "tolerance", low_open=True)
        self.failures, self.last_residual = 0, 0.0

    def solve(self, gram, losses=None):
        beta, converged, self.last_residual = nashmtl_coefficients(gram, self.iterations, self.tolerance)
        if not converged:
            self.failures += 1
            if self.failures == 1:
                warnings.warn(f"nashmtl: K α = 1/α not solved in {self.iterations} Newton steps (residual "
                              f"max|α_i (Kα)_i − 1| = {self.last_residual:.3g} > {self.tolerance:g}): the task "
                              f"gradients are (nearly) Pareto stationary -- 0 is in or near their convex hull, and "
                              f"no bargaining solution exists -- or too close to linearly dependent for float64; "
                              f"the last iterate is used. Further failures are "
                              f"counted in the strategy's state ('failures') without a warning.", RuntimeWarning,
                              stacklevel=2)
        return beta

    def state_dict(self):
        return {"failures": self.failures}

    def load_state_dict(self, state):
        self.failures = check_integer(int(state["failures"]), "state['failures']")
