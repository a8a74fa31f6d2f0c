"""The CAGrad two-objective toy: hand gradients vs finite differences, deterministic and distinct trajectories."""

import numpy as np
import pytest

from tinymtt.gradcheck import numerical_gradient, rel_error
from tinymtt.mtl import cagrad, mgda, pcgrad
from tinymtt.mtl.toy import METHODS, MINIMUM, direction, pareto_mask, toy_loss_grid, toy_losses, trajectory


def away_from_kinks(count, seed=0):
    """Points with |x2| > 0.1 (the gates' kink) and |u_i| > 0.05 (the canyon floors)."""
    rng = np.random.default_rng(seed)
    points = []
    while len(points) < count:
        x1, x2 = rng.uniform(-10, 10, 2)
        u1, u2 = -0.5 * (x1 + 7) + np.tanh(x2), -0.5 * x1 + 3.5 - np.tanh(x2)
        if abs(x2) > 0.1 and min(abs(u1), abs(u2)) > 0.05:
            points.append((x1, x2))
    return np.array(points)


@pytest.mark.parametrize("point", list(away_from_kinks(12)) + [np.array([-8.5, 7.5]), np.array([9.0, 9.0]),
                                                               np.array([-8.5, -5.0]), np.array([0.5, -8.0])])
def test_gradients_match_finite_differences(point):
    _, grads = toy_losses(point)
    for task in range(2):
        numeric = numerical_gradient(lambda x: toy_losses(x)[0][task], point.copy())
        assert rel_error(grads[task], numeric) <= 1e-7, (task, grads[task], numeric)


def test_the_tasks_conflict_in_parts_of_the_plane_only():
    cosines = []
    for point in away_from_kinks(200, seed=1):
        _, (g1, g2) = toy_losses(point)
        cosines.append(g1 @ g2 / (np.linalg.norm(g1) * np.linalg.norm(g2)))
    cosines = np.array(cosines)
    assert (cosines < -0.5).mean() > 0.1 and (cosines > 0.5).mean() > 0.1


def test_grid_matches_pointwise():
    x1, x2 = np.meshgrid(np.linspace(-9, 9, 7), np.linspace(-9, 9, 5))
    loss1, loss2 = toy_loss_grid(x1, x2)
    for i in range(x1.shape[0]):
        for j in range(x1.shape[1]):
            losses, _ = toy_losses([x1[i, j], x2[i, j]])
            assert losses[0] == loss1[i, j] and losses[1] == loss2[i, j]
    assert np.isfinite(pareto_mask(x1, x2)[x2 < 0]).any()


def test_minimum_of_the_average():
    x1, x2 = np.meshgrid(np.linspace(-1, 1, 201), np.linspace(-9.5, -7.5, 201))
    average = sum(toy_loss_grid(x1, x2)) / 2
    best = np.unravel_index(np.argmin(average), average.shape)
    assert abs(x1[best] - MINIMUM[0]) < 0.02 and abs(x2[best] - MINIMUM[1]) < 0.05


def test_directions_use_the_library_rules():
    _, grads = toy_losses([-8.5, 7.5])
    assert np.array_equal(direction("gd", grads), grads.mean(axis=0))
    assert np.array_equal(direction("pcgrad", grads), pcgrad(grads))
    assert np.array_equal(direction("mgda", grads), mgda(grads))
    assert np.array_equal(direction("cagrad", grads), cagrad(grads, c=0.5))


def test_trajectories_are_deterministic_and_start_at_the_start():
    for method in METHODS:
        first = trajectory(method, (-8.5, 7.5), 40, 0.01)
        assert first.shape == (41, 2) and np.array_equal(first[0], [-8.5, 7.5])
        assert np.array_equal(first, trajectory(method, (-8.5, 7.5), 40, 0.01))


def test_several_starts_at_once_give_each_path_exactly():
    starts = np.array([[-8.5, 7.5], [9.0, 9.0], [-8.5, -5.0]])
    for method in METHODS:
        together = trajectory(method, starts, 30, 0.01)
        assert together.shape == (31, 3, 2)
        for k, start in enumerate(starts):
            assert np.array_equal(together[:, k], trajectory(method, start, 30, 0.01))
    losses, grads = toy_losses(starts)
    assert losses.shape == (3, 2) and grads.shape == (3, 2, 2)
    assert np.array_equal(grads[1], toy_losses(starts[1])[1])


def test_the_methods_take_different_paths():
    ends = {method: trajectory(method, (-8.5, 7.5), 300, 0.01)[-1] for method in METHODS}
    for i, a in enumerate(METHODS):
        for b in METHODS[i + 1:]:
            assert np.linalg.norm(ends[a] - ends[b]) > 1e-3, (a, b, ends[a], ends[b])


def test_descent_on_the_mean_finds_its_minimum_and_mgda_stops_on_the_pareto_set():
    """From the lower bowl: GD on the mean reaches (0, −8.355); MGDA stops where g1 and g2 are opposed."""
    gd_end = trajectory("gd", (-8.5, -5.0), 2500, 0.01)[-1]
    assert np.linalg.norm(gd_end - np.array(MINIMUM)) < 0.01
    mgda_end = trajectory("mgda", (-8.5, -5.0), 2500, 0.01)[-1]
    _, (g1, g2) = toy_losses(mgda_end)
    assert g1 @ g2 / (np.linalg.norm(g1) * np.linalg.norm(g2)) < -0.99
    assert mgda_end[0] < -5.0                        # far from the average's minimum at x1 = 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="method"):
        trajectory("adam", (0.0, 1.0), 3, 0.01)
    with pytest.raises(ValueError, match="method"):
        direction("sgd", np.eye(2))
    with pytest.raises(ValueError, match="x"):
        toy_losses([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="x"):
        trajectory("gd", (np.nan, 1.0), 3, 0.01)
    with pytest.raises(ValueError, match="steps"):
        trajectory("gd", (1.0, 1.0), -1, 0.01)
