"""softmax / log_softmax: finite differences, the torch oracle, stability, the classic wrong backward."""

import re

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import check_op, rel_error
from tinymtt.ops.softmax import log_softmax_backward, log_softmax_forward, softmax_backward, softmax_forward
from tinymtt.validation import ShapeError
from helpers import host, randn, to_torch, torch_grads, torch_or_skip

# Finite-difference step. Central differences carry O(h²) truncation plus ε·|f|/h rounding;
# in float64 the two balance near h = ε^(1/3) ≈ 6e-6. At the checker's default h = 1e-6 the
# rounding part alone reaches ~1e-7 of the smaller gradient elements here, so a right backward
# can land on either side of the 1e-7 threshold depending on the seed; h = 1e-5 leaves a margin
# of 5-10x (measured over many seeds) without changing the threshold.
H = 1e-5

OPS = {
    "softmax": (softmax_forward, softmax_backward),
    "log_softmax": (log_softmax_forward, log_softmax_backward),
}

# (shape, axis): batch 1, C = 2, a single entry along the axis, 1-d, attention-like 4-d, a middle axis
CASES = [
    ((1, 2), -1),
    ((3, 5), -1),
    ((2, 1), -1),
    ((7,), 0),
    ((2, 3, 4), 1),
    ((2, 3, 4), 0),
    ((2, 2, 3, 3), -1),
]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("shape, axis", CASES)
def test_gradient_matches_finite_differences(op, shape, axis):
    forward, backward = OPS[op]
    x = randn(*shape, seed=1)
    result = check_op(forward, backward, {"x": x}, kwargs={"axis": axis}, h=H)
    assert result.passed, result.report()
    assert result.worst <= 1e-7


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("shape, axis", CASES)
def test_agrees_with_torch(op, shape, axis):
    torch = torch_or_skip()
    forward, backward = OPS[op]
    x = randn(*shape, seed=2, scale=3.0)
    dout = randn(*shape, seed=3)
    out, cache = forward(x, axis=axis)
    dx = backward(dout, cache)
    x_t = to_torch(x)
    out_t = (torch.softmax if op == "softmax" else torch.log_softmax)(x_t, dim=axis)
    (dx_t,) = torch_grads(out_t, dout, x_t)
    assert rel_error(out, out_t.detach().numpy()) <= 1e-9
    assert rel_error(dx, dx_t) <= 1e-9


def test_probabilities_sum_to_one_and_log_softmax_is_their_log():
    x = randn(4, 6, seed=4, scale=5.0)
    probs, _ = softmax_forward(x)
    log_probs, _ = log_softmax_forward(x)
    assert np.allclose(host(probs).sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    assert np.all(host(probs) > 0)
    assert rel_error(np.log(host(probs)), log_probs) <= 1e-12


def _wrong_softmax_backward(dout, cache):
    """The classic mistake: only the diagonal of the Jacobian, dx = p ⊙ g (the −Σ g·p term is missing)."""
    return cache.probs * dout


def _sum_assumed_one_backward(dout, cache):
    """A subtler mistake: dx = p ⊙ (g − 1), as if Σ_j g_j p_j were always 1. Right only when g = ones."""
    return cache.probs * (dout - 1.0)


def test_check_op_catches_the_missing_sum_term():
    x = randn(3, 5, seed=5)
    result = check_op(softmax_forward, _wrong_softmax_backward, {"x": x})
    assert not result.passed
    assert result.worst > 1e-2, result.report()
    assert "x" in result.report()


def test_a_ones_upstream_gradient_would_hide_a_wrong_backward_but_check_op_does_not():
    x = randn(3, 5, seed=6)
    probs, cache = softmax_forward(x)
    ones = probs * 0 + 1
    # With g = ones the right answer is 0 (Σ p is constant) and the wrong backward also gives 0 ...
    assert np.allclose(host(_sum_assumed_one_backward(ones, cache)), host(softmax_backward(ones, cache)),
                       rtol=0, atol=1e-15)
    # ... so only a random upstream gradient, which check_op always uses, tells them apart.
    result = check_op(softmax_forward, _sum_assumed_one_backward, {"x": x})
    assert not result.passed
    assert result.worst > 1e-2, result.report()


@pytest.mark.parametrize("op", OPS)
def test_backward_does_not_mutate_dout(op):
    forward, backward = OPS[op]
    x = randn(2, 3, 4, seed=7)
    dout = randn(2, 3, 4, seed=8)
    before = host(dout).copy()
    _, cache = forward(x)
    backward(dout, cache)
    assert np.array_equal(host(dout), before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_inputs_are_stable(dtype):
    x = backend.to_device([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4]], dtype=dtype)
    probs, p_cache = softmax_forward(x)
    log_probs, l_cache = log_softmax_forward(x)
    expected_probs = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    expected_log = np.array([[0.0, -2e4, -1e4], [-np.log(2.0), -np.log(2.0), -2e4 - np.log(2.0)]])
    assert np.allclose(host(probs), expected_probs, rtol=0, atol=1e-7)
    assert np.allclose(host(log_probs), expected_log, rtol=1e-6, atol=1e-6)
    dout = randn(2, 3, seed=9, dtype=dtype)
    for grad in (softmax_backward(dout, p_cache), log_softmax_backward(dout, l_cache)):
        assert np.all(np.isfinite(host(grad)))


def test_huge_inputs_agree_with_torch():
    torch = torch_or_skip()
    x = randn(3, 4, seed=10, scale=1e4)
    dout = randn(3, 4, seed=11)
    for op, torch_op in (("softmax", torch.softmax), ("log_softmax", torch.log_softmax)):
        forward, backward = OPS[op]
        out, cache = forward(x)
        x_t = to_torch(x)
        out_t = torch_op(x_t, dim=-1)
        (dx_t,) = torch_grads(out_t, dout, x_t)
        assert rel_error(out, out_t.detach().numpy()) <= 1e-9
        assert rel_error(backward(dout, cache), dx_t) <= 1e-9


@pytest.mark.parametrize("op", OPS)
def test_float32_stays_float32(op):
    forward, backward = OPS[op]
    x = randn(2, 5, seed=12, dtype=np.float32)
    out, cache = forward(x)
    dx = backward(randn(2, 5, seed=13, dtype=np.float32), cache)
    assert out.dtype == np.float32 and dx.dtype == np.float32


@pytest.mark.parametrize("op", OPS)
def test_bad_inputs_name_the_argument(op):
    forward, backward = OPS[op]
    with pytest.raises(TypeError, match="x"):
        forward(randn(2, 3).astype(np.int64))
    with pytest.raises(TypeError, match="x"):
        forward([[1.0, 2.0]])
    with pytest.raises(ShapeError, match="x"):
        forward(randn(1).reshape(()))             # 0-d
    with pytest.raises(ValueError, match="axis"):
        forward(randn(2, 3), axis=2)
    with pytest.raises(ValueError, match="axis"):
        forward(randn(2, 3), axis=1.0)
    with pytest.raises(ValueError, match="x"):
        forward(randn(2, 0))                      # nothing to normalize
    _, cache = forward(randn(2, 3))
    with pytest.raises(ShapeError, match="dout"):
        backward(randn(3, 2), cache)


@pytest.mark.parametrize("bad, index, words", [(np.inf, (1, 0), "inf at index (1, 0)"),
                                               (np.nan, (0, 2), "nan at index (0, 2)")])
def test_a_slice_with_inf_or_nan_is_refused_by_its_index(bad, index, words):
    x = np.zeros((2, 3))
    x[index] = bad
    with pytest.raises(ValueError, match=re.escape(words)):
        softmax_forward(x)


def test_minus_inf_is_a_mask_but_an_all_minus_inf_slice_is_refused():
    probs, _ = softmax_forward(np.array([[0.0, -np.inf, 0.0]]))
    np.testing.assert_array_equal(probs, [[0.5, 0.0, 0.5]])
    with pytest.raises(ValueError, match="all −inf"):
        softmax_forward(np.array([[0.0, 1.0], [-np.inf, -np.inf]]))
