"""Uncertainty weighting: a hand example, the hand-derived gradient against finite differences and torch,
the strategy's state update, masking, dtype, bad input."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import check_op, rel_error
from tinymtt.mtl import Uncertainty, make_strategy, uncertainty_backward, uncertainty_forward
from tinymtt.validation import ShapeError

from helpers import host, randn, to_torch, torch_or_skip


def vector(values, dtype=np.float64):
    return backend.to_device(np.asarray(values, dtype=np.float64), dtype=dtype)


def test_uncertainty_by_hand():
    # s = 0, L = (2, 1), c = (1, ½): L = 1·2 + ½·1 + 0 = 2.5;  ∂L/∂L_i = c_i = (1, ½);
    # ∂L/∂s_i = ½ − c_i L_i = (½ − 2, ½ − ½) = (−3/2, 0)
    total, cache = uncertainty_forward(vector([2.0, 1.0]), vector([0.0, 0.0]), vector([1.0, 0.5]))
    dlosses, dlog = uncertainty_backward(1.0, cache)
    assert float(host(total)) == 2.5
    assert np.array_equal(host(dlosses), [1.0, 0.5]) and np.array_equal(host(dlog), [-1.5, 0.0])
    # the stationary point: exp(−s) = 1/(2cL) ⇒ ∂L/∂s = 0 and the weight c·exp(−s) = 1/(2L)
    losses, scales = np.array([2.0, 0.3, 5.0]), np.array([1.0, 0.5, 1.0])
    _, cache = uncertainty_forward(vector(losses), vector(np.log(2 * scales * losses)), vector(scales))
    dlosses, dlog = uncertainty_backward(1.0, cache)
    assert np.abs(host(dlog)).max() <= 1e-15 and rel_error(dlosses, 1 / (2 * losses)) <= 1e-15


@pytest.mark.parametrize("num_tasks", [1, 2, 5])
def test_uncertainty_gradient_check(num_tasks):
    inputs = {"losses": vector(np.random.default_rng(num_tasks).uniform(0.1, 3.0, num_tasks)),
              "log_variances": randn(num_tasks, seed=num_tasks + 1),
              "scales": vector(np.random.default_rng(0).choice([0.5, 1.0], num_tasks))}
    result = check_op(uncertainty_forward, uncertainty_backward, inputs, wrt=["losses", "log_variances"])
    assert result.passed, result.report()
    assert result.worst <= 1e-7


def test_uncertainty_against_torch():
    torch = torch_or_skip()
    losses, log_variances, scales = vector([0.7, 2.5, 0.05]), randn(3, seed=4), vector([1.0, 1.0, 0.5])
    total, cache = uncertainty_forward(losses, log_variances, scales)
    dout = np.random.default_rng(1).standard_normal(())
    dlosses, dlog = uncertainty_backward(backend.to_device(dout), cache)
    tl, ts, tc = to_torch(losses), to_torch(log_variances), to_torch(scales, requires_grad=False)
    reference = (tc * torch.exp(-ts) * tl + 0.5 * ts).sum()
    (reference * float(dout)).backward()
    assert rel_error(total, reference.detach().numpy()) <= 1e-12
    assert rel_error(dlosses, tl.grad.numpy()) <= 1e-12 and rel_error(dlog, ts.grad.numpy()) <= 1e-12


def test_uncertainty_strategy_learns_the_stationary_weights():
    strategy = make_strategy("uncertainty", 3, kinds=["token", "regression", "sequence"], lr=0.05)
    assert np.array_equal(strategy.task_weights([1.0, 1.0, 1.0], [True] * 3), [1.0, 0.5, 1.0])   # c_i at s = 0
    losses = {"a": 2.0, "b": 0.25, "c": 0.8}
    for _ in range(3000):
        strategy.after_step(losses, {"a": True, "b": True, "c": True})
    weights = strategy.task_weights(losses, {"a": True, "b": True, "c": True})
    assert rel_error(weights, [1 / 4.0, 1 / 0.5, 1 / 1.6]) <= 1e-3         # w_i → 1/(2 L_i)


def test_uncertainty_ignores_tasks_not_counted():
    strategy = Uncertainty(2, lr=0.1)
    strategy.after_step([3.0, 0.0], [True, False])        # task 1 had no target: its 0 is not a loss
    assert strategy.log_variances[0] == pytest.approx(0.1) and strategy.log_variances[1] == 0.0
    assert np.array_equal(strategy.task_weights([3.0, 0.0], [True, False])[1:], [0.0])


def test_float32_stays_float32():
    f32 = {name: vector(v, np.float32) for name, v in
           {"a": [0.5, 2.0], "b": [0.3, -0.2], "c": [1.0, 0.5]}.items()}
    total, cache = uncertainty_forward(f32["a"], f32["b"], f32["c"])
    assert total.dtype == np.float32 and all(g.dtype == np.float32 for g in uncertainty_backward(1.0, cache))


def test_bad_input_is_named():
    with pytest.raises(ShapeError, match="one entry per task"):
        uncertainty_forward(vector([1.0, 2.0]), vector([0.0]), vector([1.0, 1.0]))
    with pytest.raises(TypeError, match="losses must be a floating-point array"):
        uncertainty_forward(backend.to_device(np.array([1, 2])), vector([0.0, 0.0]), vector([1.0, 1.0]))
    with pytest.raises(ValueError, match="losses must give one value per task"):
        Uncertainty(3).task_weights([1.0, 2.0], [True, True])
