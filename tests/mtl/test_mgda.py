"""MGDA: the two-task closed form by hand, the min-norm point against a brute-force simplex search,
its optimality conditions for more tasks, dtype, bad input."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import rel_error
from tinymtt.mtl import mgda, mgda_weights
from tinymtt.mtl.mgda import min_norm_weights

from helpers import host
from simplex_grid import simplex_grid


def gradients(num_tasks, size, seed, shared=0.5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((num_tasks, size)) + shared * rng.standard_normal(size)


def test_two_tasks_by_hand():
    # g1 = (1, 0), g2 = (−1, 1): γ = (g2 − g1)·g2 / ‖g1 − g2‖² = (−2, 1)·(−1, 1) / 5 = 3/5
    # d = 3/5 (1, 0) + 2/5 (−1, 1) = (1/5, 2/5), and g1·d = g2·d = ‖d‖² = 1/5 (both tasks descend equally)
    grads = backend.to_device(np.array([[1.0, 0.0], [-1.0, 1.0]]))
    assert rel_error(mgda_weights(grads), [0.6, 0.4]) <= 1e-15
    assert rel_error(mgda(grads), [0.2, 0.4]) <= 1e-15
    # clipped: g1 = (1, 0) lies between 0 and g2 = (2, 0), so the min-norm point is g1 itself
    assert np.array_equal(host(mgda_weights(backend.to_device(np.array([[1.0, 0.0], [2.0, 0.0]])))), [1.0, 0.0])
    # equal gradients: every α gives the same point; we take ½
    assert np.array_equal(host(mgda_weights(backend.to_device(np.array([[1.0, 2.0], [1.0, 2.0]])))), [0.5, 0.5])
    # opposite gradients: 0 is in the hull (Pareto stationary), d = 0
    assert np.abs(host(mgda(backend.to_device(np.array([[1.0, -2.0], [-1.0, 2.0]]))))).max() == 0.0


@pytest.mark.parametrize("num_tasks, steps", [(2, 20000), (3, 400)])
@pytest.mark.parametrize("seed", range(4))
def test_min_norm_point_against_brute_force(num_tasks, steps, seed):
    grads = gradients(num_tasks, 5, seed)
    gram = grads @ grads.T
    grid = simplex_grid(num_tasks, steps)
    brute = np.einsum("ni,ij,nj->n", grid, gram, grid).min()
    alpha = host(mgda_weights(backend.to_device(grads)))
    found = alpha @ gram @ alpha
    assert alpha.min() >= 0 and abs(alpha.sum() - 1) <= 1e-12
    assert found <= brute + 1e-12 * gram.max()          # at least as good as the best grid point
    assert brute - found <= 1e-4 * gram.max()           # and the grid comes close: the same minimum


@pytest.mark.parametrize("num_tasks, size", [(3, 2), (4, 30), (6, 50), (10, 200)])
def test_optimality_conditions(num_tasks, size):
    """d = Σ α_i g_i is the min-norm hull point iff g_i·d ≥ ‖d‖² for all i, with equality where α_i > 0."""
    for seed in range(5):
        grads = gradients(num_tasks, size, seed)
        alpha = host(mgda_weights(backend.to_device(grads)))
        d = alpha @ grads
        slack = grads @ d - d @ d
        scale = (grads * grads).sum(axis=1).max()
        assert slack.min() >= -1e-9 * scale, slack
        assert np.abs(slack[alpha > 1e-9]).max() <= 1e-9 * scale


def test_common_descent_direction():
    grads = gradients(4, 40, 0, shared=2.0)       # a shared part: 0 is not in the hull
    d = host(mgda(backend.to_device(grads)))
    assert (grads @ d > 0).all()
    assert d @ d < min((grads * grads).sum(axis=1))      # the min-norm point is no longer than any g_i


def test_mgda_is_weights_at_grads_and_differs_from_the_sum():
    grads = backend.to_device(gradients(3, 12, 3, shared=0.0))
    assert rel_error(mgda(grads), host(mgda_weights(grads)) @ host(grads)) <= 1e-14
    direction, total = host(mgda(grads)), host(grads).sum(axis=0)
    cosine = direction @ total / np.linalg.norm(direction) / np.linalg.norm(total)
    assert cosine < 0.99


def test_float32_stays_float32():
    grads = backend.to_device(gradients(3, 8, 1), dtype=np.float32)
    assert mgda(grads).dtype == np.float32 and mgda_weights(grads).dtype == np.float32
    assert rel_error(mgda(grads), mgda(grads.astype(np.float64))) <= 1e-5


def test_single_task_and_iterations():
    grads = backend.to_device(gradients(1, 4, 0))
    assert np.array_equal(host(mgda(grads)), host(grads)[0])
    assert np.array_equal(min_norm_weights(np.eye(3) * 2.0), np.full(3, 1 / 3))   # the centre is optimal
    with pytest.raises(ValueError, match="iterations must be an integer >= 1"):
        mgda(grads, iterations=0)
    with pytest.raises(ValueError, match="grads holds NaN"):
        mgda(backend.to_device(np.array([[np.inf, 0.0], [1.0, 1.0]])))


def frank_wolfe_gap(gram, alpha):
    """∇f·α − min_i ∇f_i with ∇f = 2Kα: ≥ f(α) − min f, 0 exactly at the optimum."""
    gradient = 2.0 * gram @ alpha
    return float(gradient @ alpha - gradient.min())


def test_the_default_reaches_the_promised_gap():
    """Issue 16: with at most 100 iterations this 5-task problem stopped at a gap of 3.4e-8·max‖g‖²."""
    grads = np.random.default_rng(23).standard_normal((5, 10))
    gram = grads @ grads.T
    scale = gram.diagonal().max()
    assert frank_wolfe_gap(gram, min_norm_weights(gram, iterations=100)) > 1e-9 * scale     # the old cap
    alpha = host(mgda_weights(backend.to_device(grads)))
    assert frank_wolfe_gap(gram, alpha) <= 1e-12 * scale                                     # the default


def test_gradient_normalisations():
    from tinymtt.mtl import make_strategy, mgda_coefficients
    grads = gradients(3, 6, 2)
    gram, losses = grads @ grads.T, np.array([0.5, 2.0, 4.0])
    norms = np.sqrt(gram.diagonal())
    assert np.array_equal(mgda_coefficients(gram, losses, "none"), min_norm_weights(gram))
    for name, scale in [("l2", norms), ("loss", losses), ("loss+", losses * norms)]:
        # the min-norm point of the rescaled gradients g_i / n_i, returned as their combination
        rescaled = grads / scale[:, None]
        expected = min_norm_weights(rescaled @ rescaled.T) @ rescaled
        assert rel_error(mgda_coefficients(gram, losses, name) @ grads, expected) <= 1e-12, name
    # "loss": a loss and its gradient times 10 change nothing (∇log(10 L) = ∇log L)
    factor = np.array([10.0, 1.0, 1.0])
    scaled = grads * factor[:, None]
    assert rel_error(mgda_coefficients(scaled @ scaled.T, losses * factor, "loss") @ scaled,
                     mgda_coefficients(gram, losses, "loss") @ grads) <= 1e-12
    strategy = make_strategy("mgda", 3, normalization="l2")
    assert rel_error(strategy.combine(backend.to_device(grads), losses, [True] * 3),
                     mgda_coefficients(gram, losses, "l2") @ grads) <= 1e-12
    with pytest.raises(ValueError, match=r"normalization must be one of \('none', 'l2', 'loss', 'loss\+'\), got 'L2'"):
        make_strategy("mgda", 2, normalization="L2")
