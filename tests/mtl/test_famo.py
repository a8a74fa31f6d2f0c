"""FAMO: the weights by hand and as the gradient of Σ z_i log L_i / c, the logits' gradient by finite
differences, which way the logits move, the direction's invariance to a loss's scale, state, misuse."""

import math

import numpy as np
import pytest

from tinymtt.gradcheck import numerical_gradient, rel_error
from tinymtt.mtl import famo_logit_gradient, famo_weights, make_strategy
from tinymtt.mtl.famo import EPSILON, log_decrease, softmax


def test_weights_by_hand():
    # ξ = 0: z = (½, ½); L = (1, 3): z/L = (½, 1/6), c = 2/3, w = (¾, ¼)
    assert rel_error(famo_weights([0.0, 0.0], [1.0, 3.0]), [0.75, 0.25]) <= 1e-7      # ε = 1e-8 next to L
    # ξ = (log 3, 0): z = (¾, ¼); L = (1, 1): w = z
    assert rel_error(famo_weights([math.log(3.0), 0.0], [1.0, 1.0]), [0.75, 0.25]) <= 1e-14


def test_weights_are_the_gradient_of_the_weighted_log_loss_with_c_held():
    rng = np.random.default_rng(0)
    logits, losses = rng.standard_normal(4), rng.uniform(0.2, 2.0, 4)
    z = softmax(logits)
    c = (z / (losses + EPSILON)).sum()
    numeric = numerical_gradient(lambda L: (z * np.log(L + EPSILON)).sum() / c, losses.copy())
    assert rel_error(famo_weights(logits, losses), numeric) <= 1e-7


@pytest.mark.parametrize("num_tasks", [2, 3, 6])
def test_logit_gradient_by_finite_differences(num_tasks):
    rng = np.random.default_rng(num_tasks)
    logits, decrease = rng.standard_normal(num_tasks), rng.standard_normal(num_tasks) * 0.1
    numeric = numerical_gradient(lambda xi: softmax(xi) @ decrease, logits.copy())
    assert rel_error(famo_logit_gradient(logits, decrease), numeric) <= 1e-7
    # by hand for two tasks: z = (½, ½), δ = (0.3, 0.1): z·δ = 0.2, gradient = ½(0.1, −0.1)
    assert rel_error(famo_logit_gradient([0.0, 0.0], [0.3, 0.1]), [0.05, -0.05]) <= 1e-15


def drive(strategy, before, after, counted=(True, True)):
    weights = strategy.task_weights(before, list(counted)).copy()
    strategy.losses_after_step(after, list(counted))
    strategy.after_step(before, list(counted))
    return weights


def test_a_task_whose_log_loss_falls_faster_loses_weight():
    strategy = make_strategy("famo", 2)
    for _ in range(20):
        drive(strategy, [1.0, 1.0], [0.5, 0.95])          # task 0 halves, task 1 barely moves
    z = softmax(strategy.logits)
    assert z[0] < 0.4 and z[1] > 0.6
    assert rel_error(log_decrease([1.0, 2.0], [0.5, 2.0]), [math.log(2.0), 0.0]) <= 1e-7


def test_the_direction_ignores_a_loss_scale():
    """d ∝ Σ z_i ∇log L_i: L_0 and ∇L_0 × 10 change c (the length), not the direction; δ, so ξ, is unchanged."""
    rng = np.random.default_rng(1)
    raw, losses = rng.standard_normal((2, 5)), np.array([0.3, 1.7])
    plain, scaled = make_strategy("famo", 2), make_strategy("famo", 2)
    factor = np.array([10.0, 1.0])
    for step in range(5):
        after = losses * (0.9 - 0.05 * (step + 1) * np.array([1.0, 0.0]))   # δ_0 > δ_1: not a tie (Adam would
        #                                                   blow a rounding-level gradient up to a full step)
        w_plain = drive(plain, losses, after)
        w_scaled = drive(scaled, losses * factor, after * factor)
        d_plain, d_scaled = w_plain @ raw, w_scaled @ (raw * factor[:, None])
        assert 1 - d_plain @ d_scaled / np.linalg.norm(d_plain) / np.linalg.norm(d_scaled) <= 1e-12
        assert rel_error(plain.logits, scaled.logits) <= 1e-6         # δ differs only through ε = 1e-8
    assert abs(plain.logits).max() > 1e-3                               # and the logits did move


def test_state_round_trips_and_misuse_is_explained():
    strategy = make_strategy("famo", 3)
    drive(strategy, [1.0, 2.0, 3.0], [0.9, 1.0, 2.9], counted=(True, True, False))
    assert strategy.last_weights[2] == 0.0
    copy = make_strategy("famo", 3)
    copy.load_state_dict(strategy.state_dict())
    assert np.array_equal(copy.logits, strategy.logits)
    assert np.array_equal(drive(copy, [1.0] * 3, [0.5] * 3, (True,) * 3), drive(strategy, [1.0] * 3, [0.5] * 3, (True,) * 3))
    strategy.task_weights([1.0] * 3, [True] * 3)
    with pytest.raises(RuntimeError, match="losses_after_step"):
        strategy.after_step([1.0] * 3, [True] * 3)
    with pytest.raises(ValueError, match="gamma .* must be a finite number"):
        make_strategy("famo", 2, gamma=-1.0)
