"""IMTL: IMTL-L's loss and ∂/∂s by hand and by finite differences, its equilibrium and loss-scale invariance;
IMTL-G by hand, its equal projections, the invariance of its direction; the variants, state, bad input."""

import math

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import check_op, rel_error
from tinymtt.mtl import (imtl_gradient, imtl_gradient_coefficients, imtl_loss_backward, imtl_loss_forward,
                         make_strategy)

from helpers import host


def vector(values):
    return backend.to_device(np.asarray(values, dtype=np.float64))


def test_loss_part_by_hand():
    # s = (0, log 2), L = (3, 1): L = 1·3 − 0 + 2·1 − log 2;  ∂L/∂L_i = e^s = (1, 2);  ∂L/∂s_i = e^s L − 1 = (2, 1)
    total, cache = imtl_loss_forward(vector([3.0, 1.0]), vector([0.0, math.log(2.0)]))
    dlosses, dscales = imtl_loss_backward(1.0, cache)
    assert rel_error(total, 5.0 - math.log(2.0)) <= 1e-15
    assert rel_error(dlosses, [1.0, 2.0]) <= 1e-15 and rel_error(dscales, [2.0, 1.0]) <= 1e-15


@pytest.mark.parametrize("num_tasks", [1, 3])
def test_loss_part_gradient_check(num_tasks):
    rng = np.random.default_rng(num_tasks)
    inputs = {"losses": vector(rng.uniform(0.1, 3.0, num_tasks)), "log_scales": vector(rng.standard_normal(num_tasks))}
    result = check_op(imtl_loss_forward, imtl_loss_backward, inputs, wrt=["losses", "log_scales"])
    assert result.passed, result.report()
    assert result.worst <= 1e-7


def test_learned_scales_reach_the_equilibrium_whatever_the_loss_scale():
    """e^{s_i} L_i → 1; with L_0 × 10 and s_0 started log 10 lower, the weighted losses are the same at every step."""
    losses = np.array([0.02, 3.0])
    plain = make_strategy("imtl", 2, variant="loss", lr=0.05)
    scaled = make_strategy("imtl", 2, variant="loss", lr=0.05)
    scaled.log_scales[0] = -math.log(10.0)
    for _ in range(400):
        w_plain = plain.task_weights(losses, [True, True])
        w_scaled = scaled.task_weights(losses * [10.0, 1.0], [True, True])
        assert rel_error(w_plain * losses, w_scaled * losses * [10.0, 1.0]) <= 1e-12
        plain.after_step(losses, [True, True])
        scaled.after_step(losses * [10.0, 1.0], [True, True])
    assert rel_error(np.exp(plain.log_scales) * losses, [1.0, 1.0]) <= 1e-3


def test_gradient_part_by_hand():
    # g1 = (1, 0), g2 = (0, 2): u1 = (1, 0), u2 = (0, 1); d = (α1, 2α2), d·u1 = d·u2 ⇒ α1 = 2α2, α1 + α2 = 1
    # ⇒ α = (2/3, 1/3), d = (2/3, 2/3)
    grads = backend.to_device(np.array([[1.0, 0.0], [0.0, 2.0]]))
    assert rel_error(imtl_gradient_coefficients(host(grads) @ host(grads).T), [2 / 3, 1 / 3]) <= 1e-15
    assert rel_error(imtl_gradient(grads), [2 / 3, 2 / 3]) <= 1e-15


@pytest.mark.parametrize("num_tasks, size", [(2, 5), (3, 8), (5, 40)])
def test_equal_projections_and_a_direction_invariant_to_scaling_one_gradient(num_tasks, size):
    rng = np.random.default_rng(size)
    grads = rng.standard_normal((num_tasks, size)) + 0.3 * rng.standard_normal(size)
    d = host(imtl_gradient(backend.to_device(grads)))
    units = grads / np.linalg.norm(grads, axis=1, keepdims=True)
    projections = units @ d
    assert rel_error(projections, np.full(num_tasks, projections[0])) <= 1e-10
    alpha = imtl_gradient_coefficients(grads @ grads.T)
    assert abs(alpha.sum() - 1) <= 1e-12 and rel_error(alpha @ grads, d) <= 1e-14
    for task in range(num_tasks):
        scaled = grads.copy()
        scaled[task] *= 10.0
        other = host(imtl_gradient(backend.to_device(scaled)))
        cosine = other @ d / np.linalg.norm(other) / np.linalg.norm(d)
        assert 1 - cosine <= 1e-12, (task, cosine)                         # the same direction ...
        assert abs(np.linalg.norm(other) / np.linalg.norm(d) - 1) > 1e-3   # ... not the same length


def test_a_zero_gradient_gets_no_weight():
    grads = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 3.0]])
    alpha = imtl_gradient_coefficients(grads @ grads.T)
    assert alpha[1] == 0.0 and rel_error(alpha[[0, 2]], [0.75, 0.25]) <= 1e-15


def test_variants_and_state():
    hybrid, loss, gradient = (make_strategy("imtl", 2, variant=v) for v in ("hybrid", "loss", "gradient"))
    assert hybrid.needs_task_gradients and gradient.needs_task_gradients and not loss.needs_task_gradients
    for strategy in (hybrid, loss, gradient):
        strategy.task_weights([2.0, 0.5], [True, True])
        strategy.after_step([2.0, 0.5], [True, True])
    assert np.array_equal(gradient.task_weights([2.0, 0.5], [True, True]), [1.0, 1.0])    # no scales to learn
    assert gradient.state_dict() == {}
    assert hybrid.log_scales[0] < 0 < hybrid.log_scales[1]        # e^s L − 1 = (1, −0.5): s_0 falls, s_1 rises
    copy = make_strategy("imtl", 2)
    copy.load_state_dict(hybrid.state_dict())
    assert np.array_equal(copy.task_weights([1.0, 1.0], [True, True]), hybrid.task_weights([1.0, 1.0], [True, True]))


def test_bad_variant_is_named():
    with pytest.raises(ValueError, match=r"variant must be one of \('hybrid', 'loss', 'gradient'\), got 'both'"):
        make_strategy("imtl", 2, variant="both")
