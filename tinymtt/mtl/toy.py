"""The two-objective toy of CAGrad (Liu et al., NeurIPS 2021, Figure 1), in two dimensions.

Two losses of a point x = (x1, x2) in the plane. The upper half (x2 > 0) is
two narrow logarithmic canyons, the lower half (x2 < 0) two bowls with
different centres, blended by the gates c_up = max(tanh(x2/2), 0) and
c_down = max(tanh(−x2/2), 0):

    u1 = −(x1 + 7)/2 + tanh(x2)           u2 = −x1/2 + 7/2 − tanh(x2)
    f_i = log(max(|u_i|, ε)) + 6          (ε = 5·10⁻⁶: the canyon floors u_i = 0 are cut off)
    q1 = ((x1 − 7)² + 0.1(x2 + 8)²)/10 − 20
    q2 = ((x1 + 7)² + 0.1(x2 + 8)²)/10 − 20
    L_i(x) = c_up·f_i + c_down·q_i

By hand (t = tanh(x2), s = tanh(x2/2); d log|u| = du/u):
    ∂f1/∂x1 = −½/u1      ∂f1/∂x2 = (1 − t²)/u1        (0 where |u_i| < ε)
    ∂f2/∂x1 = −½/u2      ∂f2/∂x2 = −(1 − t²)/u2
    ∂q_i/∂x1 = (x1 ∓ 7)/5                ∂q_i/∂x2 = (x2 + 8)/50
    ∂c_up/∂x2 = ½(1 − s²) for x2 > 0, else 0;   ∂c_down/∂x2 = −½(1 − s²) for x2 < 0, else 0
    ∂L_i/∂x = c_up ∂f_i/∂x + c_down ∂q_i/∂x + (f_i ∂c_up/∂x2 + q_i ∂c_down/∂x2) e_2

The average (L1 + L2)/2 has its minimum at about (0, −8.355); the two bowls
pull x1 towards ±7, so the segment between them (near x2 ≈ −8.4) is where
no step helps both (the Pareto set). In the upper half each canyon of f_i
traps plain descent on the average: the canyon's 1/u gradient dwarfs the
other loss's. The paper's picture: gradient descent on the mean gets stuck
in a canyon; MGDA and PCGrad reach the Pareto set but stop wherever they
meet it; CAGrad reaches the minimum of the average.

Every method turns the two task gradients G (2×2, row i = ∇L_i) into a
direction d (tinymtt.mtl's functions, on this 2×2 matrix) and, as in the
paper's experiment, Adam takes the step along d:

    gd      d = (g1 + g2)/2             mgda    d = min-norm point of the segment [g1, g2]
    pcgrad  d = g1^PC + g2^PC           cagrad  d = CAGrad(G, c = 0.5)

Adam divides by the running size of d, so the methods' different scales
(PCGrad's sum, MGDA's shrinking min-norm point) do not change the step size.
With small steps the canyons trap descent; with large ones (lr ≳ 0.01) Adam
hops over the canyon walls and plain descent escapes too: the trap is a
small-step phenomenon, which is why the picture (tinymtt.plots.toy.plot_toy)
uses lr = 0.004 (25,000 steps).
"""

from __future__ import annotations

import numpy

from ..optim import Adam
from ..validation import check_integer
from .cagrad import cagrad
from .mgda import mgda
from .pcgrad import pcgrad

EPSILON = 5e-6
METHODS = ("gd", "pcgrad", "mgda", "cagrad")
STARTS = ((-8.5, 7.5), (9.0, 9.0), (-8.5, -5.0))
MINIMUM = (0.0, -8.355)         # of the average loss (numerically, to 3 decimals)


def _toy(x1, x2):
    """Elementwise over arrays x1, x2: (L1, L2, ∂L1/∂x1, ∂L1/∂x2, ∂L2/∂x1, ∂L2/∂x2) (module docstring)."""
    t = numpy.tanh(x2)
    u1, u2 = -0.5 * (x1 + 7.0) + t, -0.5 * x1 + 3.5 - t
    inside1, inside2 = numpy.abs(u1) >= EPSILON, numpy.abs(u2) >= EPSILON          # not cut off at ε
    f1 = numpy.log(numpy.maximum(numpy.abs(u1), EPSILON)) + 6.0
    f2 = numpy.log(numpy.maximum(numpy.abs(u2), EPSILON)) + 6.0
    r1 = numpy.where(inside1, 1.0 / numpy.where(inside1, u1, 1.0), 0.0)            # d log|u| = du / u
    r2 = numpy.where(inside2, 1.0 / numpy.where(inside2, u2, 1.0), 0.0)
    q1 = ((x1 - 7.0) ** 2 + 0.1 * (x2 + 8.0) ** 2) / 10.0 - 20.0
    q2 = ((x1 + 7.0) ** 2 + 0.1 * (x2 + 8.0) ** 2) / 10.0 - 20.0
    s = numpy.tanh(0.5 * x2)
    up, down = numpy.maximum(s, 0.0), numpy.maximum(-s, 0.0)
    dup = numpy.where(s > 0, 0.5 * (1.0 - s * s), 0.0)
    ddown = numpy.where(s < 0, -0.5 * (1.0 - s * s), 0.0)
    sech2 = 1.0 - t * t
    loss1, loss2 = up * f1 + down * q1, up * f2 + down * q2
    d1x1 = up * (-0.5 * r1) + down * (x1 - 7.0) / 5.0
    d2x1 = up * (-0.5 * r2) + down * (x1 + 7.0) / 5.0
    d1x2 = up * sech2 * r1 + down * (x2 + 8.0) / 50.0 + f1 * dup + q1 * ddown
    d2x2 = -up * sech2 * r2 + down * (x2 + 8.0) / 50.0 + f2 * dup + q2 * ddown
    return loss1, loss2, d1x1, d1x2, d2x1, d2x2


def toy_losses(x):
    """L (2,) = (L1(x), L2(x)) and G (2, 2) with row i = ∇L_i(x), for a point x (2,), float64 on the host.

    Several points at once: x (K, 2) gives L (K, 2) and G (K, 2, 2).
    """
    x = numpy.asarray(x, dtype=numpy.float64)
    if x.ndim not in (1, 2) or x.shape[-1] != 2 or not numpy.isfinite(x).all():
        raise ValueError(f"x must be a finite point (x1, x2) of shape (2,), or points (K, 2), got {x!r}")
    loss1, loss2, d1x1, d1x2, d2x1, d2x2 = _toy(x[..., 0], x[..., 1])
    losses = numpy.stack([loss1, loss2], axis=-1)
    grads = numpy.stack([numpy.stack([d1x1, d1x2], axis=-1), numpy.stack([d2x1, d2x2], axis=-1)], axis=-2)
    return losses, grads


def toy_loss_grid(x1, x2):
    """(L1, L2) on arrays of points (e.g. a meshgrid), elementwise."""
    loss1, loss2 = _toy(numpy.asarray(x1, dtype=numpy.float64), numpy.asarray(x2, dtype=numpy.float64))[:2]
    return loss1, loss2


def direction(method, grads, c=0.5):
    """The update direction d (2,) of ``method`` from the task gradients G (2, 2) (module docstring)."""
    if method == "gd":
        return grads.mean(axis=0)
    if method == "pcgrad":
        return pcgrad(grads)            # fixed projection order; with two tasks the order makes no difference
    if method == "mgda":
        return mgda(grads)
    if method == "cagrad":
        return cagrad(grads, c=c)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def trajectory(method, start, steps, lr, c=0.5):
    """The points visited, (steps + 1, 2): Adam (lr) along ``direction(method, G(x))`` from ``start`` (2,).

    Several starts (K, 2) give (steps + 1, K, 2), each path exactly the one it
    would be alone (Adam works element by element; each start gets its own
    direction). Deterministic: no randomness anywhere (PCGrad in its fixed order).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    steps = check_integer(steps, "steps")
    points = numpy.array(start, dtype=numpy.float64)
    toy_losses(points)                                  # a clear error for a bad start
    optimizer = Adam({"x": points}, lr=lr)
    path = numpy.empty((steps + 1,) + points.shape)
    path[0] = points
    for step in range(1, steps + 1):
        _, grads = toy_losses(points)
        if points.ndim == 1:
            update = direction(method, grads, c)
        else:                                           # the rules take one (2, 2) matrix at a time
            update = numpy.stack([direction(method, g, c) for g in grads])
        optimizer.step({"x": update})                   # updates ``points`` in place
        path[step] = points
    return path


def pareto_mask(x1, x2):
    """The sine of the angle between g1 and g2 where they are opposed (dot < 0) in the lower half, else NaN.

    Its zero contour is the Pareto set of the bowls (x2 < 0), where the
    trajectories end. (In the upper half, between the two canyons, the losses
    barely depend on x2 and pull x1 in opposite directions almost everywhere:
    nearly the whole band is "opposed", which a contour would only clutter.)
    """
    x1, x2 = numpy.asarray(x1, dtype=numpy.float64), numpy.asarray(x2, dtype=numpy.float64)
    _, _, a1, a2, b1, b2 = _toy(x1, x2)
    with numpy.errstate(invalid="ignore", divide="ignore"):
        sine = (a1 * b2 - a2 * b1) / (numpy.hypot(a1, a2) * numpy.hypot(b1, b2))
    return numpy.where((a1 * b1 + a2 * b2 < 0) & (x2 < 0), sine, numpy.nan)
