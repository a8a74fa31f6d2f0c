"""GradVac: the move reaches the target cosine, zero targets give PCGrad, the Gram-matrix form against a
plain loop over vectors (LibMTL's), the EMA of the targets, masking, state."""

import math

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import rel_error
from tinymtt.mtl import gradvac, make_strategy, pcgrad
from tinymtt.mtl.gradvac import gradvac_matrix
from tinymtt.mtl.pcgrad import partner_order

from helpers import host


def gradients(num_tasks, size, seed, shared=0.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((num_tasks, size)) + shared * rng.standard_normal(size)


def loop_reference(grads, targets, beta, order):
    """GradVac written as LibMTL writes it: one task, one partner at a time, on the vectors themselves."""
    moved, targets = grads.copy(), targets.copy()
    for i in range(len(grads)):
        for j in order[i]:
            cosine = moved[i] @ grads[j] / (np.linalg.norm(moved[i]) * np.linalg.norm(grads[j]) + 1e-8)
            target = targets[i, j]
            if cosine < target:
                w = (np.linalg.norm(moved[i]) * (target * math.sqrt(1 - cosine ** 2) - cosine * math.sqrt(1 - target ** 2))
                     / (np.linalg.norm(grads[j]) * math.sqrt(1 - target ** 2) + 1e-8))
                moved[i] = moved[i] + w * grads[j]
            targets[i, j] = (1 - beta) * target + beta * cosine
    return moved.sum(axis=0), targets


def test_one_move_reaches_the_target_cosine():
    # g1 = (1, 0), g2 = (−1, 1): cos = −1/√2 < φ̂ = 0.5; after the move cos(g1^GV, g2) = 0.5
    grads = np.array([[1.0, 0.0], [-1.0, 1.0]])
    targets = np.array([[0.0, 0.5], [0.5, 0.0]])
    combination, new_targets = gradvac_matrix(grads @ grads.T, targets, beta=0.25)
    moved = combination @ grads
    for i, j in [(0, 1), (1, 0)]:
        assert abs(moved[i] @ grads[j] / np.linalg.norm(moved[i]) / np.linalg.norm(grads[j]) - 0.5) <= 1e-7
    assert rel_error(new_targets[0, 1], 0.75 * 0.5 + 0.25 * (-1 / math.sqrt(2))) <= 1e-7   # EMA of the cosine before
    # pairs that agree more than their target are left alone
    same, _ = gradvac_matrix(grads @ grads.T, np.full((2, 2), -0.9), beta=0.5)
    assert np.array_equal(same, np.eye(2))


def test_zero_targets_are_pcgrad():
    grads = gradients(4, 10, 3)
    d, targets = gradvac(backend.to_device(grads), beta=0.5)
    assert rel_error(d, pcgrad(backend.to_device(grads))) <= 1e-7             # the 1e-8 under the divisions
    assert (targets[~np.eye(4, dtype=bool)] != 0).all()


@pytest.mark.parametrize("seed", range(3))
def test_gram_form_equals_the_loop_over_vectors(seed):
    grads = gradients(4, 12, seed, shared=0.3)
    rng = np.random.default_rng(seed)
    targets = rng.uniform(-0.3, 0.6, (4, 4))
    order = partner_order(4, np.random.default_rng(seed + 10))
    combination, new_targets = gradvac_matrix(grads @ grads.T, targets, 0.3, np.random.default_rng(seed + 10))
    expected, expected_targets = loop_reference(grads, targets, 0.3, order)
    assert rel_error(combination.sum(axis=0) @ grads, expected) <= 1e-12
    assert rel_error(new_targets, expected_targets) <= 1e-12


def test_strategy_keeps_targets_skips_tasks_not_counted_and_round_trips():
    strategy = make_strategy("gradvac", 3, seed=4)
    grads = backend.to_device(gradients(3, 6, 5))
    strategy.combine(grads, [1.0] * 3, [True] * 3)
    before = strategy.targets.copy()
    strategy.combine(grads, [1.0] * 3, [True, False, True])
    assert np.array_equal(strategy.targets[1], before[1]) and np.array_equal(strategy.targets[:, 1], before[:, 1])
    assert strategy.last_weights[1] == 0.0 and not np.array_equal(strategy.targets[0], before[0])
    copy = make_strategy("gradvac", 3, seed=4)
    copy.load_state_dict(strategy.state_dict())
    assert rel_error(copy.combine(grads, [1.0] * 3, [True] * 3), host(strategy.combine(grads, [1.0] * 3, [True] * 3))) == 0
    with pytest.raises(ValueError, match="beta .* must be a finite number in \\[0.0, 1.0\\]"):
        make_strategy("gradvac", 2, beta=1.5)
