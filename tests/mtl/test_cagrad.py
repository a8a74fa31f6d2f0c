"""CAGrad: hand examples, the dual solve against a brute-force simplex search, strong duality,
the ball constraint, the closed-form line search, dtype, bad input."""

import itertools
import math

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import rel_error
from tinymtt.mtl import cagrad, cagrad_weights, mgda, pcgrad
from tinymtt.mtl.cagrad import _line_minimum, cagrad_dual
from tinymtt.mtl.mgda import min_norm_weights

from helpers import host
from simplex_grid import simplex_grid


def gradients(num_tasks, size, seed, shared=0.5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((num_tasks, size)) + shared * rng.standard_normal(size)


def dual_objective(w, grads, c):
    """F(w) = g_w·g_0 + c‖g_0‖‖g_w‖, written with vectors (not the Gram matrix)."""
    g0 = grads.mean(axis=0)
    gw = w @ grads
    return gw @ g0 + c * np.linalg.norm(g0) * np.linalg.norm(gw)


def test_hand_examples():
    # orthogonal unit gradients, c = ½: g_0 = (½, ½), ‖g_0‖ = 1/√2, √φ = 1/(2√2); by symmetry w = (½, ½),
    # ‖g_w‖ = 1/√2, λ = √φ/‖g_w‖ = ½, d = g_0 + ½ g_w = (¾, ¾), update d/(1 + ¼) = (3/5, 3/5)
    grads = backend.to_device(np.eye(2))
    assert rel_error(cagrad(grads, c=0.5), [0.6, 0.6]) <= 1e-12
    # g1 = (1, 0), g2 = (−1, 1), c = ½: g_0 = (0, ½), √φ = ¼; with w = (x, 1 − x), g_w = (2x − 1, 1 − x),
    # F(x) = ½(1 − x) + ¼√(5x² − 6x + 2), F'(x) = −½ + ¼(5x − 3)/√(5x² − 6x + 2), F'(1) = 0, F convex
    # ⇒ w = (1, 0), g_w = g1, λ = ¼, d = (0, ½) + ¼(1, 0) = (¼, ½), update (1/5, 2/5)
    grads = backend.to_device(np.array([[1.0, 0.0], [-1.0, 1.0]]))
    assert rel_error(cagrad_dual(host(grads) @ host(grads).T, 0.5), [1.0, 0.0]) <= 1e-12
    assert rel_error(cagrad(grads, c=0.5), [0.2, 0.4]) <= 1e-12
    assert rel_error(cagrad_weights(grads, c=0.5), [0.6, 0.4]) <= 1e-12
    # c = 0: plain descent on the mean loss, d = g_0
    grads = backend.to_device(gradients(3, 5, 0))
    assert rel_error(cagrad(grads, c=0.0), host(grads).mean(axis=0)) <= 1e-14
    # one task: d = g + c‖g‖ g/‖g‖ = (1 + c) g, divided by 1 + c²
    single = backend.to_device(np.array([[3.0, -4.0]]))
    assert rel_error(cagrad(single, c=0.4), np.array([3.0, -4.0]) * 1.4 / 1.16) <= 1e-14


@pytest.mark.parametrize("num_tasks, steps", [(2, 20000), (3, 400)])
@pytest.mark.parametrize("c", [0.2, 0.5, 0.8])
def test_dual_solve_against_brute_force(num_tasks, steps, c):
    for seed in range(3):
        grads = gradients(num_tasks, 6, seed)
        gram = grads @ grads.T
        grid = simplex_grid(num_tasks, steps)
        g0 = grads.mean(axis=0)
        values = grid @ grads @ g0 + c * np.linalg.norm(g0) * np.sqrt(np.einsum("ni,ij,nj->n", grid, gram, grid))
        w = cagrad_dual(gram, c)
        found = dual_objective(w, grads, c)
        assert w.min() >= 0 and abs(w.sum() - 1) <= 1e-12
        assert found <= values.min() + 1e-12 * gram.max()
        assert values.min() - found <= 1e-4 * gram.max()


@pytest.mark.parametrize("num_tasks, size", [(2, 3), (3, 10), (4, 30), (6, 50)])
def test_strong_duality_and_the_ball(num_tasks, size):
    """At the solution: max_d min_i g_i·d over the ball equals F(w*), and d lies on the ball's boundary."""
    c = 0.5
    for seed in range(5):
        grads = gradients(num_tasks, size, seed)
        scale = (grads * grads).sum(axis=1).max()
        w = cagrad_dual(grads @ grads.T, c)
        d = host(cagrad(backend.to_device(grads), c)) * (1 + c * c)       # undo the rescaling
        g0 = grads.mean(axis=0)
        assert abs(np.linalg.norm(d - g0) - c * np.linalg.norm(g0)) <= 1e-9 * math.sqrt(scale)
        gap = dual_objective(w, grads, c) - (grads @ d).min()
        assert -1e-12 * scale <= gap <= 1e-9 * scale, gap
        # and no other point of the ball does better for the worst task (random points on the boundary)
        rng = np.random.default_rng(seed)
        directions = rng.standard_normal((2000, size))
        others = g0 + c * np.linalg.norm(g0) * directions / np.linalg.norm(directions, axis=1, keepdims=True)
        assert (others @ grads.T).min(axis=1).max() <= (grads @ d).min() + 1e-12 * scale


def test_line_search_closed_form_against_bisection():
    rng = np.random.default_rng(0)
    for _ in range(500):
        a, b = rng.standard_normal(4), rng.standard_normal(4)         # g_w and g_u
        q0, q1, q2 = a @ a, a @ b, b @ b
        slope, radius, step_max = rng.standard_normal(), abs(rng.standard_normal()), rng.uniform(0.1, 3)

        def derivative(gamma):
            return slope + radius * (q1 + gamma * q2) / math.sqrt(q0 + 2 * gamma * q1 + gamma * gamma * q2)

        low, high = 0.0, step_max
        if derivative(step_max) <= 0:
            expected = step_max
        elif derivative(0.0) >= 0:
            expected = 0.0
        else:
            for _ in range(200):
                middle = 0.5 * (low + high)
                low, high = (middle, high) if derivative(middle) < 0 else (low, middle)
            expected = 0.5 * (low + high)
        assert abs(_line_minimum(slope, radius, q0, q1, q2, step_max) - expected) <= 1e-9


def test_differs_from_the_other_methods_on_a_conflict():
    grads = backend.to_device(gradients(3, 12, 3, shared=0.0))
    updates = {"cagrad": host(cagrad(grads)), "mgda": host(mgda(grads)), "pcgrad": host(pcgrad(grads)),
               "mean": host(grads).mean(axis=0)}
    for one, two in itertools.combinations(updates, 2):
        u, v = updates[one], updates[two]
        assert u @ v / np.linalg.norm(u) / np.linalg.norm(v) < 0.999, (one, two)
    assert rel_error(cagrad(grads), host(cagrad_weights(grads)) @ host(grads)) <= 1e-14


def test_float32_stays_float32():
    grads = backend.to_device(gradients(3, 8, 1), dtype=np.float32)
    assert cagrad(grads).dtype == np.float32 and cagrad_weights(grads).dtype == np.float32
    assert rel_error(cagrad(grads), cagrad(grads.astype(np.float64))) <= 1e-5


def test_cancelling_gradients_give_the_mean():
    grads = backend.to_device(np.array([[1.0, 2.0], [-1.0, -2.0], [0.5, 0.0]]))
    w = cagrad_dual(host(grads) @ host(grads).T, 0.5)
    assert np.linalg.norm(w @ host(grads)) <= 1e-6          # 0 is in the hull: the dual reaches it (nearly)
    assert np.isfinite(host(cagrad(grads))).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"c": -0.1}, "c .* must be a finite number"),
    ({"c": float("nan")}, "c .* must be a finite number"),
    ({"iterations": 0}, "iterations must be an integer >= 1"),
])
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cagrad(backend.to_device(np.eye(2)), **kwargs)


@pytest.mark.parametrize("c", [1.0, 1.5, 3.0])
def test_pareto_stationary_with_a_large_ball_gives_no_step(c):
    """Issue 16: 5 tasks on 3 parameters, 0 in the hull. For c ≥ 1, d = 0 is in the ball and optimal (gain 0);
    the old code returned a d with min_i g_i·d = −0.05 at c = 1.5 (a step that raises a task's loss)."""
    grads = np.random.default_rng(0).standard_normal((5, 3))
    gram = grads @ grads.T
    alpha = min_norm_weights(gram, iterations=100000)
    assert alpha @ gram @ alpha <= 1e-15 * gram.max()              # 0 is in the convex hull (MGDA's d is 0)
    d = host(cagrad(backend.to_device(grads), c=c))
    assert (grads @ d).min() >= 0.0 and np.array_equal(d, np.zeros(3))


def test_a_large_ball_away_from_stationarity_still_moves():
    grads = gradients(5, 3, 1)                                      # shared part: 0 is not in the hull
    for c in (1.0, 1.5):
        d = host(cagrad(backend.to_device(grads), c=c))
        assert (grads @ d).min() > 0.0
