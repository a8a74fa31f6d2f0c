"""Dynamic weight average: a hand example, the windows and masking of the strategy, dtype, bad input."""

import math

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import rel_error
from tinymtt.mtl import DynamicWeightAverage, dwa_weights, make_strategy

from helpers import host


def vector(values, dtype=np.float64):
    return backend.to_device(np.asarray(values, dtype=np.float64), dtype=dtype)


def test_dwa_by_hand():
    # r = (1/2, 2/2) = (½, 1), τ = 2: w = 2·(e^¼, e^½)/(e^¼ + e^½)
    weights = dwa_weights(vector([1.0, 2.0]), vector([2.0, 2.0]), temperature=2.0)
    expected = 2 * np.exp([0.25, 0.5]) / (np.exp(0.25) + np.exp(0.5))
    assert rel_error(weights, expected) <= 1e-15
    assert np.array_equal(host(dwa_weights(vector([3.0, 3.0, 3.0]), vector([3.0, 3.0, 3.0]))), [1.0, 1.0, 1.0])
    # a zero before-previous loss reads as "no trend": r = 1
    assert rel_error(dwa_weights(vector([1.0, 5.0]), vector([1.0, 0.0])), [1.0, 1.0]) <= 1e-15
    # huge ratios do not overflow: the softmax is shifted
    assert np.isfinite(host(dwa_weights(vector([1e6, 1.0]), vector([1e-6, 1.0]), temperature=0.01))).all()


def test_dwa_strategy_windows_and_masking():
    strategy = DynamicWeightAverage(2, window=2, temperature=2.0)
    steps = [([4.0, 1.0], [True, True]), ([2.0, 0.0], [True, False]),      # window 1: means (3, 1)
             ([1.0, 1.0], [True, True]), ([2.0, 1.0], [True, True])]       # window 2: means (1.5, 1)
    for losses, counted in steps:
        assert np.array_equal(strategy.task_weights(losses, counted), np.where(counted, 1.0, 0.0))  # t = 1, 2: w = 1
        strategy.after_step(losses, counted)
    assert np.array_equal(strategy.means, [[1.5, 1.0], [3.0, 1.0]])        # the uncounted 0 never entered a mean
    weights = strategy.task_weights([1.0, 1.0], [True, True])
    assert rel_error(weights, host(dwa_weights(vector([1.5, 1.0]), vector([3.0, 1.0])))) <= 1e-15
    assert weights[0] < 1 < weights[1] and weights.sum() == pytest.approx(2.0)   # task 0 fell faster
    assert np.array_equal(strategy.task_weights([1.0, 1.0], [True, False]), [weights[0], 0.0])


def test_float32_stays_float32():
    f32 = {name: vector(v, np.float32) for name, v in {"a": [0.5, 2.0], "c": [1.0, 0.5]}.items()}
    assert dwa_weights(f32["a"], f32["c"]).dtype == np.float32


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        dwa_weights(vector([1.0]), vector([1.0]), temperature=0)
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        make_strategy("dwa", 2, window=0)
    assert math.isfinite(float(host(dwa_weights(vector([1.0]), vector([1.0])))[0]))
