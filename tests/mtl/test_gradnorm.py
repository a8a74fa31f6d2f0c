"""GradNorm: a hand example, the hand-derived gradient against finite differences and torch, the strategy's
update by hand, masking, positivity, dtype, bad input."""

import math

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import check_op, rel_error
from tinymtt.mtl import GradNorm, gradnorm_backward, gradnorm_forward, gradnorm_targets
from tinymtt.mtl.gradnorm import MIN_WEIGHT

from helpers import host, to_torch, torch_or_skip


def vector(values, dtype=np.float64):
    return backend.to_device(np.asarray(values, dtype=np.float64), dtype=dtype)


def test_gradnorm_by_hand():
    # w = (1, 1), n = (2, 1), L̃ = (1, 1), α = 1.5: G = (2, 1), Ḡ = 3/2, r = (1, 1), target = (3/2, 3/2)
    # L_grad = |2 − 3/2| + |1 − 3/2| = 1;  ∂/∂w = (sign(½)·2, sign(−½)·1) = (2, −1)
    weights, norms = vector([1.0, 1.0]), vector([2.0, 1.0])
    targets = gradnorm_targets(weights, norms, vector([1.0, 1.0]), alpha=1.5)
    assert np.array_equal(host(targets), [1.5, 1.5])
    total, cache = gradnorm_forward(weights, norms, targets)
    assert float(host(total)) == 1.0 and np.array_equal(host(gradnorm_backward(1.0, cache)), [2.0, -1.0])
    # a lagging task (L̃ larger) gets a larger target: r = (4/3, 2/3) with L̃ = (1, ½); α = 1
    targets = gradnorm_targets(vector([1.0, 1.0]), vector([1.0, 1.0]), vector([1.0, 0.5]), alpha=1.0)
    assert rel_error(targets, [4 / 3, 2 / 3]) <= 1e-15


@pytest.mark.parametrize("num_tasks", [2, 3, 6])
def test_gradnorm_gradient_check(num_tasks):
    rng = np.random.default_rng(num_tasks)
    weights, norms = vector(rng.uniform(0.5, 2.0, num_tasks)), vector(rng.uniform(0.1, 3.0, num_tasks))
    targets = gradnorm_targets(weights, norms, vector(rng.uniform(0.2, 1.5, num_tasks)), alpha=1.5)
    assert np.abs(host(weights * norms - targets)).min() > 1e-3              # away from the kink of |·|
    result = check_op(gradnorm_forward, gradnorm_backward, {"weights": weights, "norms": norms, "targets": targets},
                      wrt=["weights"])
    assert result.passed, result.report()
    assert result.worst <= 1e-7


def test_gradnorm_against_torch_with_the_target_held_constant():
    torch = torch_or_skip()
    weights, norms, ratios = vector([0.8, 1.5, 0.7]), vector([2.0, 0.4, 1.1]), vector([0.9, 0.5, 0.7])
    _, cache = gradnorm_forward(weights, norms, gradnorm_targets(weights, norms, ratios, alpha=1.5))
    tw, tn, tr = to_torch(weights), to_torch(norms, False), to_torch(ratios, False)
    G = tw * tn
    target = (G.mean() * (tr / tr.mean()) ** 1.5).detach()           # the paper: no gradient through the target
    (G - target).abs().sum().backward()
    assert rel_error(gradnorm_backward(1.0, cache), tw.grad.numpy()) <= 1e-12


def test_gradnorm_strategy_update_by_hand():
    strategy = GradNorm(2, alpha=1.0, lr=0.1)
    strategy.attach({"encoder.w.weight": slice(0, 2), "encoder.norm.gamma": slice(2, 3)})
    assert strategy.layer == "encoder.w.weight"                       # the last *.weight
    grads = np.array([[3.0, 4.0, 100.0], [0.0, 1.0, -100.0]])            # on W: G = (5, 1); gamma ignored
    w = strategy.task_weights([2.0, 1.0], [True, True])
    assert np.array_equal(w, [1.0, 1.0])
    assert np.array_equal(host(strategy.combine(backend.to_device(grads), [2.0, 1.0], [True, True])), grads.sum(axis=0))
    strategy.after_step([2.0, 1.0], [True, True])                     # first step: L(0) = L, r = 1, target = Ḡ = 3
    # ∂L_grad/∂w = (sign(5 − 3)·5, sign(1 − 3)·1) = (5, −1); w = (1 − 0.5, 1 + 0.1) = (0.5, 1.1), then Σ w = 2
    assert rel_error(strategy.current, np.array([0.5, 1.1]) * 2 / 1.6) <= 1e-15
    assert np.array_equal(strategy.initial_losses, [2.0, 1.0])
    # a huge step: w = (0.625, 1.375), G = (3.125, 1.375), target 2.25, ∂/∂w = (5, −1), so
    # w = (0.625 − 500, 1.375 + 100) is clamped to (MIN_WEIGHT, 101.375): positive; then Σ w = T again
    strategy.lr = 100.0
    w = strategy.task_weights([2.0, 1.0], [True, True])
    strategy.combine(backend.to_device(w[:, None] * grads), [2.0, 1.0], [True, True])   # rows ∇(w_i L_i)
    strategy.after_step([2.0, 1.0], [True, True])
    assert rel_error(strategy.current, np.array([MIN_WEIGHT, 101.375]) * 2 / (MIN_WEIGHT + 101.375)) <= 1e-14
    assert strategy.current.min() > 0


def test_gradnorm_masks_tasks_not_counted():
    strategy = GradNorm(3, alpha=1.5, lr=0.05)
    strategy.attach({"w.weight": slice(0, 2)})
    grads = backend.to_device(np.array([[1.0, 2.0], [0.0, 0.0], [2.0, 0.5]]))    # task 1: no target, zero row
    counted = [True, False, True]
    assert np.array_equal(strategy.task_weights([1.0, 0.0, 2.0], counted), [1.0, 0.0, 1.0])
    strategy.combine(grads, [1.0, 0.0, 2.0], counted)
    strategy.after_step([1.0, 0.0, 2.0], counted)
    # only tasks 0 and 2 take part: G = (√5, √4.25), target Ḡ (r = 1 at the first step), signs (+, −);
    # task 1's weight stays 1 until the renormalisation to Σ w = 3
    expected = np.array([1 - 0.05 * math.sqrt(5), 1.0, 1 + 0.05 * math.sqrt(4.25)])
    assert rel_error(strategy.current, expected * 3 / expected.sum()) <= 1e-15
    assert not strategy.initial_known[1]                     # its L(0) is still to come, not 0
    strategy.combine(grads, [1.0, 0.5, 2.0], [True, True, True])
    strategy.after_step([1.0, 0.5, 2.0], [True, True, True])
    assert strategy.initial_losses[1] == 0.5 and np.isfinite(strategy.current).all()


def test_float32_stays_float32():
    f32 = {name: vector(v, np.float32) for name, v in {"a": [0.5, 2.0], "c": [1.0, 0.5]}.items()}
    targets = gradnorm_targets(f32["a"], f32["c"], f32["c"], alpha=1.5)
    total, cache = gradnorm_forward(f32["a"], f32["c"], targets)
    assert targets.dtype == total.dtype == gradnorm_backward(1.0, cache).dtype == np.float32


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="alpha must be a number >= 0"):
        gradnorm_targets(vector([1.0]), vector([1.0]), vector([1.0]), alpha=-1)
    with pytest.raises(RuntimeError, match="attach"):
        GradNorm(2).combine(vector([[1.0], [2.0]]), [1.0, 1.0], [True, True])
    with pytest.raises(KeyError, match="not a shared parameter"):
        GradNorm(2, layer="heads.0.linear.weight").attach({"encoder.w.weight": slice(0, 2)})
