"""What the gradient methods share: the T×T Gram matrix and a Frank–Wolfe solver on the simplex.

PCGrad, MGDA and CAGrad all return a combination of the task gradients,

    d = Σ_i a_i g_i = a @ G          G: (T, P), one row per task, a: (T,)

whose coefficients depend on the gradients only through their inner products
K_ij = g_i·g_j, the Gram matrix K = G Gᵀ (T, T). So the (T, P) work is two
matmuls -- K = G Gᵀ and d = a @ G -- and everything in between is a solve on
T² numbers. That solve runs on the host in float64 (``gram_matrix``): T² numbers
cost nothing to copy, the iterative solves below take many small scalar
decisions (an argmin, a clip) that a GPU would answer one synchronisation at a
time, and float64 keeps the solution exact whatever the training dtype. The
coefficients go back to the gradients' device and dtype before the last matmul,
so float32 gradients give a float32 update.

``frank_wolfe`` minimises a convex f(α) over the probability simplex
Δ = {α ≥ 0, Σ α_i = 1}. Each iteration:

    t = argmin_i ∇f(α)_i                   the vertex e_t that f decreases towards
    s = argmax_{i: α_i > 0} ∇f(α)_i        the used vertex f increases towards
    gap = ∇f(α)·(α − e_t) ≥ f(α) − min_Δ f  (convexity; 0 exactly at the optimum)
    toward:  α ← α + γ (e_t − α),     γ ∈ [0, 1]
    away:    α ← α + γ (α − e_s),     γ ∈ [0, α_s / (1 − α_s)]   (takes weight off e_s)
    (the one whose direction descends faster; γ by an exact line search)

Sener & Koltun's Algorithm 2 takes toward steps only. Those zigzag when the
optimum lies inside a face of Δ: on random problems with 4 to 10 tasks the gap
after 100 iterations is still up to ~5e-3·max‖g_i‖². The away step
(Lacoste-Julien & Jaggi, NeurIPS 2015) takes weight off a vertex that should
not be used and converges linearly, but the rate depends on the geometry.
Measured on 200 random Gaussian problems each (iterations to a gap of
1e-12·max‖g_i‖²): with P ≥ 10T (T = 4 to 10) at most 75 to 100; with P close
to T (T = 5, P = 10) a median of 59 but up to 441; with P < T (T = 5, P = 3
or 4: 0 may lie in the hull, or close to it) a median of 60, one problem in
ten over 250 and a few over 10 000. So the loop stops on the gap, and the
cap ``iterations`` is only a guard: MGDA's default is 1000 (100 stopped at
gaps up to 3e-9·max‖g_i‖² on 5-task problems, weights off by ~3e-4).
"""

from __future__ import annotations

import numpy

from ..backend import array_module, to_numpy
from ..validation import ShapeError, check_array, describe

TOLERANCE = 1e-12     # stop when the Frank–Wolfe gap is below this times max_i ‖g_i‖²


def check_task_gradients(grads, name="grads"):
    """Require a (T, P) floating-point matrix, one row per task, T >= 1, P >= 1."""
    check_array(grads, name, ndim=2, kind="float")
    if grads.shape[0] < 1 or grads.shape[1] < 1:
        raise ShapeError(f"{name} must have shape (T, P) with at least one task and one parameter, "
                         f"got {describe(grads)}")
    return grads


def gram_matrix(grads, name="grads"):
    """K = G Gᵀ (T, T), K_ij = g_i·g_j, as a host float64 array; a clear error for NaN/inf."""
    check_task_gradients(grads, name)
    gram = numpy.asarray(to_numpy(grads @ grads.T), dtype=numpy.float64)
    if not numpy.isfinite(gram).all():
        bad = sorted({int(i) for i in numpy.flatnonzero(~numpy.isfinite(gram.diagonal()))}) or "some"
        raise ValueError(f"{name} holds NaN or inf, or values whose products overflow {grads.dtype} (task rows "
                         f"{bad}): a gradient combination needs finite gradients; lower the learning rate or check "
                         f"the data")
    return gram


def combine_rows(coefficients, grads):
    """a @ G: (P,) for coefficients a (T,), (T, P) for a matrix A (T, T); ``a`` goes to G's device and dtype first."""
    xp = array_module(grads)
    return xp.asarray(coefficients, dtype=grads.dtype) @ grads


def frank_wolfe(gradient, line_search, num_tasks, iterations, scale, tolerance=TOLERANCE):
    """Minimise a convex f over the simplex by Frank–Wolfe with away steps (module docstring).

    gradient(α) -> ∇f(α) (T,);  line_search(α, direction, γ_max) -> the γ in [0, γ_max]
    minimising f(α + γ·direction);  scale: the size of f's gradients (the stop is gap <= tolerance·scale).
    Starts at the centre α = 1/T. Returns α (T,) host float64, on the simplex.
    """
    alpha = numpy.full(num_tasks, 1.0 / num_tasks)
    for _ in range(iterations):
        grad = gradient(alpha)
        toward = int(numpy.argmin(grad))
        used = numpy.flatnonzero(alpha > 0)
        away = int(used[numpy.argmax(grad[used])])
        gap = float(grad @ alpha - grad[toward])
        if gap <= tolerance * scale:
            break
        away_step = gap < float(grad[away] - grad @ alpha)   # the away direction descends faster
        if away_step:
            direction = alpha.copy()
            direction[away] -= 1.0
            step_max = alpha[away] / (1.0 - alpha[away])
        else:
            direction = -alpha
            direction[toward] += 1.0
            step_max = 1.0
        gamma = line_search(alpha, direction, step_max)
        alpha = numpy.maximum(alpha + gamma * direction, 0.0)
        if away_step and gamma >= step_max:
            alpha[away] = 0.0                              # a full away step drops that vertex exactly
        alpha /= alpha.sum()
    return alpha
