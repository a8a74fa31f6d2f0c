"""Nash-MTL: the bargaining equation by hand and on random problems, the normalisation's scale, what the
invariance to a gradient's scale is exactly, the failure at a Pareto-stationary point (reported), state."""

import math
import warnings

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import rel_error
from tinymtt.mtl import make_strategy, nashmtl, nashmtl_coefficients
from tinymtt.mtl.nashmtl import bargaining_objective, solve_bargaining

from helpers import host


def gradients(num_tasks, size, seed, shared=1.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((num_tasks, size)) + shared * rng.standard_normal(size)


def test_by_hand():
    # orthogonal g1 = (1, 0), g2 = (0, 2): K = diag(1, 4), α_i² K_ii = 1 ⇒ α = (1, ½), d = (1, 1), ‖d‖² = T = 2
    alpha, converged, residual = solve_bargaining(np.diag([1.0, 4.0]))
    assert converged and residual == 0.0 and np.array_equal(alpha, [1.0, 0.5])
    # with K/‖K‖_F (‖K‖_F = √17): β = 17^¼ α, d = 17^¼ (1, 1)
    grads = backend.to_device(np.array([[1.0, 0.0], [0.0, 2.0]]))
    assert rel_error(nashmtl(grads), np.full(2, 17 ** 0.25)) <= 1e-15


@pytest.mark.parametrize("num_tasks, size", [(2, 4), (3, 10), (5, 40), (8, 100)])
def test_the_solution_solves_the_equation(num_tasks, size):
    for seed in range(3):
        grads = gradients(num_tasks, size, seed)
        gram = grads @ grads.T
        beta, converged, _ = nashmtl_coefficients(gram)
        normalised = gram / np.linalg.norm(gram)
        assert converged and (beta > 0).all()
        assert np.abs(beta * (normalised @ beta) - 1).max() <= 1e-6          # (K/‖K‖_F) β = 1/β
        d = beta @ grads
        assert rel_error(grads @ d * beta, np.full(num_tasks, np.linalg.norm(gram))) <= 1e-6   # g_i·d = ‖K‖_F/β_i
        assert abs(d @ d / (num_tasks * np.linalg.norm(gram)) - 1) <= 1e-6    # ‖d‖² = T ‖K‖_F
        assert (grads @ d > 0).all()                                         # every task gains


def test_newton_minimises_the_convex_objective():
    grads = gradients(4, 12, 7)
    gram = grads @ grads.T
    alpha, converged, _ = solve_bargaining(gram, tolerance=1e-12)
    rng = np.random.default_rng(0)
    best = bargaining_objective(alpha, gram)
    for _ in range(200):                                  # no nearby positive point is lower
        other = alpha * np.exp(0.05 * rng.standard_normal(4))
        assert bargaining_objective(other, gram) >= best - 1e-12
    assert converged


@pytest.mark.parametrize("task", [0, 2])
def test_scaling_one_gradient_keeps_the_direction_and_scales_the_length_by_the_gram_norm(task):
    """Exactly what holds: α' = α/c for the scaled task, the unnormalised d unchanged; with K/‖K‖_F, d' = √(‖K'‖/‖K‖) d."""
    grads = gradients(3, 9, 4)
    scaled = grads.copy()
    scaled[task] *= 10.0
    gram, gram_scaled = grads @ grads.T, scaled @ scaled.T
    alpha, _, _ = solve_bargaining(gram, tolerance=1e-13)
    alpha_scaled, _, _ = solve_bargaining(gram_scaled, tolerance=1e-13)
    expected = alpha.copy()
    expected[task] /= 10.0
    assert rel_error(alpha_scaled, expected) <= 1e-10
    assert rel_error(alpha_scaled @ scaled, alpha @ grads) <= 1e-10
    d, d_scaled = host(nashmtl(backend.to_device(grads))), host(nashmtl(backend.to_device(scaled)))
    ratio = math.sqrt(np.linalg.norm(gram_scaled) / np.linalg.norm(gram))
    assert rel_error(d_scaled, ratio * d) <= 1e-6                          # the stop's tolerance, 1e-6
    assert ratio > 2                                                       # so the length does change


def test_a_pareto_stationary_point_is_reported_not_hidden():
    # g3 = −(g1 + g2): 0 = (g1 + g2 + g3)/3 is in the hull, f is unbounded below, no solution exists
    grads = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.2], [-1.0, -1.0, -0.7]])
    beta, converged, residual = nashmtl_coefficients(grads @ grads.T, iterations=50)
    assert not converged and residual > 1e-6 and np.isfinite(beta).all() and (beta > 0).all()
    strategy = make_strategy("nashmtl", 3, iterations=50)
    with pytest.warns(RuntimeWarning, match="not solved in 50 Newton steps.*Pareto stationary"):
        strategy.combine(backend.to_device(grads), [1.0] * 3, [True] * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                     # the second failure is counted, not warned
        strategy.combine(backend.to_device(grads), [1.0] * 3, [True] * 3)
    assert strategy.state_dict() == {"failures": 2}
    copy = make_strategy("nashmtl", 3)
    copy.load_state_dict(strategy.state_dict())
    assert copy.failures == 2


def test_zero_gradient_and_float32():
    grads = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]])
    beta, converged, _ = nashmtl_coefficients(grads @ grads.T)
    assert converged and beta[1] == 0.0 and beta[0] > 0 and beta[2] > 0
    grads32 = backend.to_device(gradients(3, 8, 1), dtype=np.float32)
    assert nashmtl(grads32).dtype == np.float32
    assert rel_error(nashmtl(grads32), nashmtl(grads32.astype(np.float64))) <= 1e-5


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="tolerance must be a finite number in \\(0.0, inf\\]"):
        make_strategy("nashmtl", 2, tolerance=0.0)
