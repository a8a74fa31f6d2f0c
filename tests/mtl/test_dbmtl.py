"""DB-MTL: the EMA and the rescaling by hand, invariance to the scale of a loss, equal pulls, masking, state."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import rel_error
from tinymtt.mtl import make_strategy

from helpers import host

COUNTED = [True, True]


def run(strategy, losses_per_step, raw_per_step, counted=COUNTED):
    """Drives DB-MTL as the trainer does: rows = w_i ∇L_i with w = task_weights(losses); returns each d."""
    updates = []
    for losses, raw in zip(losses_per_step, raw_per_step):
        weights = strategy.task_weights(losses, counted)
        updates.append(host(strategy.combine(backend.to_device(weights[:, None] * raw), losses, counted)))
    return updates


def test_by_hand():
    # L = (2, 0.5), ∇L = ((6, 0), (0, 0.5)): ∇log L = ((3, 0), (0, 1)); after one step ĝ = 0.1·∇log L
    # (β = 0.9 from ĝ = 0), norms (0.3, 0.1): α = (1, 3), d = (0.3, 0) + 3·(0, 0.1) = (0.3, 0.3)
    strategy = make_strategy("dbmtl", 2)
    weights = strategy.task_weights([2.0, 0.5], COUNTED)
    assert rel_error(weights, [1 / (2 + 1e-8), 1 / (0.5 + 1e-8)]) <= 1e-15
    (update,) = run(make_strategy("dbmtl", 2), [[2.0, 0.5]], [np.array([[6.0, 0.0], [0.0, 0.5]])])
    assert rel_error(update, [0.3, 0.3]) <= 1e-7                          # 1e-8 under the norms
    # a second, equal step: ĝ = 0.9·0.1 g + 0.1 g = 0.19 g, and d = (0.57, 0.57)
    updates = run(make_strategy("dbmtl", 2), [[2.0, 0.5]] * 2, [np.array([[6.0, 0.0], [0.0, 0.5]])] * 2)
    assert rel_error(updates[1], [0.57, 0.57]) <= 1e-7


def test_sigma_shrinks_the_average_factor():
    strategy = make_strategy("dbmtl", 1, beta=0.8, sigma=1.0)          # β_t = 0.8/t
    raw = [np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])]
    run(strategy, [[1.0], [1.0]], raw, counted=[True])
    # t = 1: ĝ = 0.2 (1, 0);  t = 2: β_2 = 0.4, ĝ = (0, 1) + 0.4 (ĝ − (0, 1)) = (0.08, 0.6)
    assert rel_error(strategy.average[0], [0.08, 0.6]) <= 2e-8          # w = 1/(L + 1e-8): 1e-8 relative


def test_a_loss_times_ten_leaves_the_update_unchanged():
    """The paper's claim, exactly: log(cL) = log c + log L, so the rows ∇log L_i and all that follows are the same."""
    rng = np.random.default_rng(0)
    losses = [rng.uniform(0.1, 2.0, 3) for _ in range(4)]
    raw = [rng.standard_normal((3, 6)) for _ in range(4)]
    plain = run(make_strategy("dbmtl", 3), losses, raw, counted=[True] * 3)
    factor = np.array([10.0, 1.0, 1.0])                               # task 0's loss, and so its gradient, × 10
    scaled = run(make_strategy("dbmtl", 3), [loss * factor for loss in losses], [r * factor[:, None] for r in raw],
                 counted=[True] * 3)
    for a, b in zip(plain, scaled):
        assert rel_error(a, b) <= 1e-7                                 # ε = 1e-8 next to L is all that differs
    # and the plain sum does change: the claim is not true of every method
    assert rel_error(sum(r.sum(axis=0) for r in raw), sum((r * factor[:, None]).sum(axis=0) for r in raw)) > 0.1


def test_every_task_pulls_with_the_largest_norm():
    strategy = make_strategy("dbmtl", 3)
    rng = np.random.default_rng(1)
    run(strategy, [[1.0, 1.0, 1.0]], [rng.standard_normal((3, 5)) * np.array([[1.0], [10.0], [0.1]])],
        counted=[True] * 3)
    average, alpha = host(strategy.average), strategy.last_weights
    norms = np.linalg.norm(average, axis=1)
    assert norms.argmax() == 1 and norms.min() < 0.02 * norms.max()      # the norms differ ~100-fold
    pulls = np.linalg.norm(alpha[:, None] * average, axis=1)
    # each pull is max_j n_j · n_i / (n_i + 1e-8): the largest norm, but for the 1e-8 under the division
    assert rel_error(pulls, norms.max() * norms / (norms + 1e-8)) <= 1e-14
    assert rel_error(pulls, np.full(3, norms.max())) <= 1e-8 / norms.min()


def test_a_task_not_counted_keeps_its_average_and_state_round_trips():
    strategy = make_strategy("dbmtl", 2)
    raw = np.array([[1.0, 2.0], [3.0, -1.0]])
    run(strategy, [[1.0, 1.0]], [raw])
    before = host(strategy.average).copy()
    (update,) = run(strategy, [[1.0, 1.0]], [raw * 5], counted=[True, False])
    assert np.array_equal(host(strategy.average)[1], before[1]) and strategy.last_weights[1] == 0
    assert rel_error(update, host(strategy.average)[0]) <= 1e-7        # task 0 alone, scaled to its own norm
    assert np.array_equal(strategy.counts, [2.0, 1.0])
    copy = make_strategy("dbmtl", 2)
    copy.load_state_dict(strategy.state_dict())
    assert run(copy, [[1.0, 1.0]], [raw])[0].tolist() == run(strategy, [[1.0, 1.0]], [raw])[0].tolist()


def test_bad_options_are_named():
    with pytest.raises(ValueError, match=r"beta \(the EMA factor\) must be a finite number in \[0.0, 1.0\)"):
        make_strategy("dbmtl", 2, beta=1.0)
