"""RLW: the softmax by hand, masking, the weights' distribution, the draw tied to (seed, step), the state."""

import math

import numpy as np
import pytest

from tinymtt.mtl import make_strategy, rlw_weights
from tinymtt.mtl.rlw import rlw_draw


def test_weights_by_hand():
    # z = (0, log 3): softmax = (1, 3)/4; a task not counted gets 0 and the others still sum to 1
    assert np.allclose(rlw_weights([0.0, math.log(3.0)]), [0.25, 0.75], rtol=1e-15, atol=0)
    assert np.allclose(rlw_weights([0.0, math.log(3.0), 5.0], [True, True, False]), [0.25, 0.75, 0.0],
                       rtol=1e-15, atol=0)
    assert np.array_equal(rlw_weights([1.0, 2.0], [False, False]), [0.0, 0.0])
    assert np.isfinite(rlw_weights([800.0, -800.0])).all()             # the shifted softmax does not overflow


def test_weights_are_random_positive_and_average_to_one_over_t():
    strategy = make_strategy("rlw", 3, seed=5)
    draws = []
    for _ in range(3000):
        draws.append(strategy.task_weights([1.0, 1.0, 1.0], [True, True, True]).copy())
        strategy.after_step([1.0, 1.0, 1.0], [True, True, True])
    draws = np.array(draws)
    assert (draws > 0).all() and np.allclose(draws.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert np.abs(draws.mean(axis=0) - 1 / 3).max() <= 0.015            # E[λ_i] = 1/T by symmetry
    assert draws.std(axis=0).min() >= 0.1                               # and they do vary, step to step
    assert len({tuple(row) for row in draws}) == len(draws)


def test_the_draw_follows_seed_and_step_so_a_resume_draws_the_same():
    one, two = make_strategy("rlw", 4, seed=1), make_strategy("rlw", 4, seed=1)
    counted = [True] * 4
    for _ in range(3):
        one.task_weights([1.0] * 4, counted)
        one.after_step([1.0] * 4, counted)
    two.load_state_dict(one.state_dict())
    assert one.state_dict() == {"calls": 3}
    assert np.array_equal(one.task_weights([1.0] * 4, counted), two.task_weights([1.0] * 4, counted))
    assert np.array_equal(one.task_weights([1.0] * 4, counted), rlw_weights(rlw_draw(1, 3, 4)))
    other = make_strategy("rlw", 4, seed=2)
    other.load_state_dict({"calls": 3})
    assert not np.array_equal(other.task_weights([1.0] * 4, counted), one.task_weights([1.0] * 4, counted))


def test_bad_seed_is_named():
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        make_strategy("rlw", 2, seed=-1)
