"""CAGrad: conflict-averse gradient descent (Liu, Liu, Jin, Stone & Liu, NeurIPS 2021).

Plain descent follows the mean gradient g_0 = (1/T) Σ_i g_i, which can leave
one task worse off. CAGrad looks, within a ball around g_0, for the direction
that helps the worst-off task most:

    max_d min_i g_i·d    subject to ‖d − g_0‖ ≤ c‖g_0‖          (c ≥ 0)

Writing min_i g_i·d = min_{w ∈ Δ} g_w·d with g_w = Σ_i w_i g_i (Δ the simplex)
and swapping max and min (the problem is convex-concave): for fixed w the
maximum of a linear function over the ball is at d = g_0 + √φ g_w/‖g_w‖, with
φ = c²‖g_0‖², and its value is g_w·g_0 + √φ‖g_w‖. So the dual is a T-dimensional problem

    w* = argmin_{w ∈ Δ} F(w),   F(w) = g_w·g_0 + √φ ‖g_w‖
    d  = g_0 + (√φ / ‖g_w*‖) g_w*

On the Gram matrix K (tinymtt.mtl.simplex): g_w·g_0 = wᵀh with h = K·1/T,
‖g_w‖ = √(wᵀKw), ‖g_0‖² = mean(K), and ∇F = h + √φ·Kw/‖g_w‖. F is convex
(linear plus a norm of a linear map), so we minimise it by Frank–Wolfe with
away steps, as for MGDA; along a direction u, F(w + γu) is convex in γ and
its slope u·h + √φ(wᵀKu + γ uᵀKu)/‖g_{w+γu}‖ increases; its zero, the exact
line search, has a closed form (``_line_minimum``).
At the optimum the duality gap is 0: F(w*) = min_i g_i·d, a check the tests use.

The update is d/(1 + c²), as the authors' code does by default (``rescale=1``):
c = 0 gives g_0 (gradient descent on the mean loss), and the division keeps the
step's size comparable as c grows. Note the mean: with c = 0, CAGrad's step is
1/T of the sum Σ g_i that the fixed strategy (weights 1) takes.
If g_w* = 0 (the gradients cancel: a Pareto-stationary point) the direction
g_w/‖g_w‖ is undefined and we take d = g_0.

Pareto-stationary points with c ≥ 1. When 0 lies in the convex hull of the
g_i, every d has min_i g_i·d ≤ 0 (some convex combination of the g_i·d is
0·d = 0), so the best worst-task gain is at most 0. With c ≥ 1 the ball
‖d − g_0‖ ≤ c‖g_0‖ holds d = 0, which reaches it: d = 0 is optimal. There F
reaches its minimum 0 only in the limit g_w → 0 (F ≥ (c − 1)‖g_0‖‖g_w‖ ≥ 0),
Frank–Wolfe stops with a small g_w of an arbitrary direction, and the
formula above gives a d on the ball's boundary that can raise a task's loss
(min_i g_i·d = −0.05 on the test's 5 tasks on 3 parameters at c = 1.5; an
independent check found −0.50 on another such case). So
for c ≥ 1 the update is checked: the optimum has min_i g_i·d ≥ 0 (d = 0 is
feasible), and a d with min_i g_i·d < 0 is replaced by d = 0.
"""

from __future__ import annotations

import math

import numpy

from ..backend import array_module
from ..validation import check_integer, check_number
from .base import GradientCombination
from .simplex import combine_rows, frank_wolfe, gram_matrix


def _check_c(c):
    return check_number(c, "c (the radius of the ball around g_0, in units of ‖g_0‖)")


def _line_minimum(slope, radius, q0, q1, q2, step_max):
    """argmin over γ ∈ [0, γ_max] of φ(γ) = slope·γ + r·√q(γ),  q(γ) = q0 + 2 q1 γ + q2 γ² = ‖g_{w+γu}‖².

    φ'(γ) = slope + r·v/√q with v = q1 + q2 γ. Since q = (v² + Δ)/q2 with
    Δ = q0 q2 − q1² ≥ 0 (Cauchy–Schwarz), v/√q = √q2 · v/√(v² + Δ), which rises
    with γ from −√q2 to √q2: φ is convex. Its zero: v/√(v² + Δ) = ρ with
    ρ = −slope/(r√q2); for |ρ| < 1 that is v = ρ√(Δ/(1 − ρ²)), γ = (v − q1)/q2.
    For ρ ≥ 1 φ only falls (γ = γ_max), for ρ ≤ −1 it only rises (γ = 0).
    """
    if q2 <= 0.0 or radius == 0.0:                 # φ is linear in γ (g_u = 0, or c = 0)
        return step_max if slope < 0.0 else 0.0
    rho = -slope / (radius * math.sqrt(q2))
    if rho >= 1.0:
        return step_max
    if rho <= -1.0:
        return 0.0
    v = rho * math.sqrt(max(q0 * q2 - q1 * q1, 0.0) / (1.0 - rho * rho))
    return min(max((v - q1) / q2, 0.0), step_max)


def cagrad_dual(gram, c=0.5, iterations=100):
    """w* (T,) host float64: the minimiser of F(w) = wᵀh + c‖g_0‖·√(wᵀKw) over the simplex."""
    num_tasks = gram.shape[0]
    h = gram.mean(axis=1)                                         # h_i = g_i·g_0
    radius = c * math.sqrt(max(float(gram.mean()), 0.0))          # √φ = c‖g_0‖
    tiny = 1e-300

    def gradient(w):
        kw = gram @ w
        return h + radius * kw / math.sqrt(max(float(w @ kw), tiny))

    def line_search(w, direction, step_max):
        kd = gram @ direction
        q0, q1, q2 = float(w @ gram @ w), float(w @ kd), float(direction @ kd)
        return _line_minimum(float(h @ direction), radius, q0, q1, q2, step_max)

    return frank_wolfe(gradient, line_search, num_tasks, iterations, scale=float(gram.diagonal().max()))


def cagrad_coefficients(gram, c=0.5, iterations=100):
    """a (T,) host float64 with the CAGrad update d/(1 + c²) = a @ G (module docstring)."""
    num_tasks = gram.shape[0]
    w = cagrad_dual(gram, c, iterations)
    norm_squared = float(w @ gram @ w)                            # ‖g_w‖²
    radius = c * math.sqrt(max(float(gram.mean()), 0.0))
    scale = float(gram.diagonal().max())
    lam = radius / math.sqrt(norm_squared) if norm_squared > 1e-20 * scale else 0.0
    coefficients = (numpy.full(num_tasks, 1.0 / num_tasks) + lam * w) / (1.0 + c * c)   # (g_0 + λ g_w) / (1 + c²)
    if c >= 1.0 and (gram @ coefficients).min() < 0.0:
        return numpy.zeros(num_tasks)      # d = 0 is in the ball and gains 0 for every task: it does better
    return coefficients


def cagrad_weights(grads, c=0.5, iterations=100):
    """a (T,) with cagrad(grads) = Σ_i a_i g_i, in the dtype and on the device of ``grads``."""
    c, iterations = _check_c(c), check_integer(iterations, "iterations", low=1)
    return array_module(grads).asarray(cagrad_coefficients(gram_matrix(grads), c, iterations), dtype=grads.dtype)


def cagrad(grads, c=0.5, iterations=100):
    """The CAGrad update (P,): (g_0 + (√φ/‖g_w*‖) g_w*) / (1 + c²), from grads (T, P)."""
    c, iterations = _check_c(c), check_integer(iterations, "iterations", low=1)
    return combine_rows(cagrad_coefficients(gram_matrix(grads), c, iterations), grads)


# -- the strategy --------------------------------------------------------------------
class CAGrad(GradientCombination):
    """CAGrad with radius ``c`` (0.5 default, as the paper's experiments), the update divided by 1 + c²."""

    name = "cagrad"
    options = {"c": 0.5, "iterations": 100}

    def __init__(self, num_tasks, *, kinds=None, c=0.5, iterations=100):
        super().__init__(num_tasks, kinds=kinds)
        self.c = check_number(c, "c")
        self.iterations = check_integer(iterations, "iterations", low=1)

    def solve(self, gram, losses=None):
        return cagrad_coefficients(gram, self.c, self.iterations)
