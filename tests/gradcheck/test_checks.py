"""The gradient checker must pass right code and catch every planted bug, with a hint that says why.

Small ops are written here by hand (softmax, a square matmul, a bias add, a sum
over the batch, ReLU) so each bug is one visible line; the linear op comes from
tinymtt.ops. check_op draws its own random upstream gradient, so every planted
bug is caught through sum(out · g) with g random, as a student's would be.
"""

import re

import numpy as np
import pytest

from tinymtt import gradcheck
from tinymtt.backend import array_module
from tinymtt.gradcheck import check_backward, check_op, numerical_gradient, rel_error
from tinymtt.ops import linear_backward, linear_forward

from helpers import host, randn


# ---------------------------------------------------------------- hand-written ops

def softmax_forward(x):
    xp = array_module(x)
    shifted = x - x.max(axis=-1, keepdims=True)
    e = xp.exp(shifted)
    y = e / e.sum(axis=-1, keepdims=True)
    return y, y


def softmax_backward(dout, y):
    """dx = y ⊙ (g − Σ_j y_j g_j): the right one."""
    return y * (dout - (dout * y).sum(axis=-1, keepdims=True))


def softmax_backward_drops_sum(dout, y):
    """Bug: the −Σ_j y_j g_j term is gone (only the Jacobian's diagonal is used)."""
    return y * dout


def softmax_backward_unweighted_sum(dout, y):
    """Bug: the Σ term is a plain mean of g instead of the y-weighted sum Σ_j y_j g_j."""
    return y * (dout - dout.mean(axis=-1, keepdims=True))


def softmax_forward_in_place(x):
    """Bug: the stabilising shift is written into the caller's x."""
    xp = array_module(x)
    x -= x.max(axis=-1, keepdims=True)
    e = xp.exp(x)
    y = e / e.sum(axis=-1, keepdims=True)
    return y, y


def matmul_forward(x, w):
    return x @ w, (x, w)


def matmul_backward(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout


def matmul_backward_transposed(dout, cache):
    """Bug: dw = dOutᵀ·X, the transpose of the right Xᵀ·dOut -- same shape when w is square."""
    x, w = cache
    return dout @ w.T, dout.T @ x


def bias_add_forward(x, b):
    return x + b, None


def bias_add_backward(dout, cache):
    return dout, dout.sum(axis=0)


def bias_add_backward_no_sum(dout, cache):
    """Bug: db keeps the batch axis."""
    return dout, dout


def batch_sum_forward(x):
    """out = Σ_n x_n: every example feeds the same output."""
    return x.sum(axis=0), x.shape


def batch_sum_backward(dout, shape):
    xp = array_module(dout)
    return xp.broadcast_to(dout, shape).copy()


def relu_forward(x):
    return x * (x > 0), x


def relu_backward(dout, x):
    return dout * (x > 0)


def relu_backward_in_place(dout, x):
    """Bug: the classic one-liner that zeroes the caller's upstream gradient."""
    dout[x <= 0] = 0
    return dout


# ---------------------------------------------------------------- inputs

def linear_inputs(n=4, din=3, dout=5, seed=0):
    return {"x": randn(n, din, seed=seed), "w": randn(din, dout, seed=seed + 1), "b": randn(dout, seed=seed + 2)}


def away_from_zero(*shape, seed=0):
    """Inputs for ReLU at least 0.1 from its kink, so finite differences see a smooth function."""
    x = randn(*shape, seed=seed)
    xp = array_module(x)
    return xp.where(x >= 0, x + 0.1, x - 0.1)


def with_backward(transform):
    """linear_backward with one gradient changed by ``transform(dx, dw, db) -> (dx, dw, db)``."""
    def backward(dout, cache):
        return transform(*linear_backward(dout, cache))
    return backward


# ---------------------------------------------------------------- right code passes

@pytest.mark.parametrize("shape", [(1, 3, 2), (4, 3, 5), (2, 3, 4, 6)])
def test_linear_passes(shape, capsys):
    *lead, din, dout = shape
    inputs = {"x": randn(*lead, din, seed=1), "w": randn(din, dout, seed=2), "b": randn(dout, seed=3)}
    result = check_backward(linear_forward, linear_backward, inputs)
    assert result.passed, result.report()
    assert result.worst <= 1e-7
    assert set(result.errors) == {"x", "w", "b"}
    printed = capsys.readouterr().out
    assert "all 3 gradient(s) right" in printed
    assert printed.count("right  rel. error") == 3
    assert "WRONG" not in printed
    assert "1e-7" in printed  # the threshold is explained, not a bare number


@pytest.mark.parametrize("forward, backward, inputs", [
    (softmax_forward, softmax_backward, lambda: {"x": randn(3, 5, seed=4)}),
    (matmul_forward, matmul_backward, lambda: {"x": randn(4, 3, seed=5), "w": randn(3, 3, seed=6)}),
    (bias_add_forward, bias_add_backward, lambda: {"x": randn(4, 3, seed=7), "b": randn(3, seed=8)}),
    (batch_sum_forward, batch_sum_backward, lambda: {"x": randn(4, 3, seed=9)}),
    (relu_forward, relu_backward, lambda: {"x": away_from_zero(4, 5, seed=10)}),
], ids=["softmax", "square-matmul", "bias-add", "batch-sum", "relu"])
def test_right_hand_written_ops_pass(forward, backward, inputs):
    result = check_op(forward, backward, inputs())
    assert result.passed, result.report()
    assert result.worst <= 1e-7


def test_wrt_subset_of_a_backward_that_returns_every_input():
    """linear_backward returns (dx, dw, db); checking only w must compare dw, not dx."""
    result = check_op(linear_forward, linear_backward, linear_inputs(), wrt=["w"])
    assert result.passed, result.report()
    assert list(result.errors) == ["w"]
    no_bias = {"x": randn(4, 3, seed=1), "w": randn(3, 2, seed=2)}   # backward still gives (dx, dw, None)
    result = check_op(linear_forward, linear_backward, no_bias, wrt=["w"])
    assert result.passed, result.report()
    assert check_op(linear_forward, linear_backward, no_bias).passed


def test_non_float_inputs_are_passed_through_and_not_checked():
    def scale_rows_forward(x, ids):
        return x * (ids[:, None] + 1), ids

    def scale_rows_backward(dout, ids):
        return dout * (ids[:, None] + 1)

    inputs = {"x": randn(3, 4, seed=11), "ids": np.array([0, 2, 1])}
    result = check_op(scale_rows_forward, scale_rows_backward, inputs)
    assert result.passed, result.report()
    assert list(result.errors) == ["x"]


# ---------------------------------------------------------------- planted bugs are caught

def test_wrong_constant_factor(capsys):
    result = check_backward(linear_forward, with_backward(lambda dx, dw, db: (2 * dx, dw, db)), linear_inputs())
    assert not result.passed
    assert result.errors["x"] > 1e-2
    assert result.errors["w"] <= 1e-7 and result.errors["b"] <= 1e-7
    printed = capsys.readouterr().out
    assert "1 of 3 gradient(s) WRONG" in printed
    line = next(l for l in printed.splitlines() if l.strip().startswith("dx "))
    assert "WRONG" in line and "worst at index" in line
    assert "constant factor 2" in printed


def test_wrong_constant_factor_below_one():
    result = check_op(linear_forward, with_backward(lambda dx, dw, db: (dx, dw / 3, db)), linear_inputs())
    assert not result.passed
    assert "constant factor 1/3" in result.inputs[1].hint


def test_wrong_irrational_factor_is_reported_with_its_value():
    factor = 1 / np.sqrt(8)
    result = check_op(linear_forward, with_backward(lambda dx, dw, db: (dx, dw * factor, db)), linear_inputs())
    assert not result.passed
    hint = result.inputs[1].hint
    assert "constant factor" in hint and f"{factor:.6g}" in hint


def test_sign_flip():
    result = check_op(linear_forward, with_backward(lambda dx, dw, db: (dx, -dw, db)), linear_inputs())
    assert not result.passed
    assert result.errors["w"] == pytest.approx(1.0)  # |a − (−a)| / (|a| + |−a|)
    assert "wrong sign" in result.inputs[1].hint


def test_missing_transpose_non_square(capsys):
    """dw returned as (Dout, Din): the shapes differ, and the hint says why."""
    result = check_backward(linear_forward, with_backward(lambda dx, dw, db: (dx, dw.T, db)), linear_inputs())
    assert not result.passed
    assert result.errors["w"] == float("inf")
    printed = capsys.readouterr().out
    assert "dw" in printed and "WRONG" in printed
    assert "transposed" in result.inputs[1].hint
    assert "transposed" in printed


def test_missing_transpose_square_same_shape(capsys):
    """With a square w the transposed dw has the right shape, so only its values can tell."""
    inputs = {"x": randn(4, 3, seed=12), "w": randn(3, 3, seed=13)}
    result = check_backward(matmul_forward, matmul_backward_transposed, inputs)
    assert not result.passed
    assert result.errors["x"] <= 1e-7
    assert result.errors["w"] > 1e-2
    printed = capsys.readouterr().out
    line = next(l for l in printed.splitlines() if l.strip().startswith("dw "))
    assert "WRONG" in line and "worst at index" in line
    assert "transposed" in result.inputs[1].hint
    assert "transposed" in printed


def test_missing_batch_sum_in_linear():
    result = check_op(linear_forward, with_backward(lambda dx, dw, db: (dx, dw, None)), linear_inputs(),
                      wrt=["x", "w"])
    assert result.passed, result.report()  # b=... unchecked: sanity for the next one

    def no_sum(dout, cache):
        dx, dw, _ = linear_backward(dout, cache)
        return dx, dw, dout.reshape(-1, dout.shape[-1])  # db with the batch axis still on

    result = check_op(linear_forward, no_sum, linear_inputs())
    assert not result.passed
    assert result.errors["b"] == float("inf")
    assert "sum over the batch" in result.inputs[2].hint


def test_missing_batch_sum_in_bias_add(capsys):
    inputs = {"x": randn(4, 3, seed=14), "b": randn(3, seed=15)}
    result = check_backward(bias_add_forward, bias_add_backward_no_sum, inputs)
    assert not result.passed
    printed = capsys.readouterr().out
    assert "db" in printed and "WRONG" in printed
    assert "sum over the batch" in printed


def test_backward_that_writes_into_dout(capsys):
    """The gradient values are right: only the in-place write is wrong, and the verdict says so."""
    x = away_from_zero(4, 5, seed=16)
    result = check_backward(relu_forward, relu_backward_in_place, {"x": x})
    assert result.mutated_upstream
    assert result.errors["x"] <= 1e-7
    assert not result.passed
    printed = capsys.readouterr().out
    assert "changed its upstream gradient dout in place" in printed
    assert "right" in printed and "FAILED" in printed
    # the right backward on the same input is not accused
    assert check_op(relu_forward, relu_backward, {"x": x}).passed


def test_backward_returning_too_few_gradients(capsys):
    result = check_backward(linear_forward, lambda dout, cache: linear_backward(dout, cache)[:2], linear_inputs())
    assert not result.passed
    assert result.errors["b"] == float("inf")
    assert result.errors["x"] <= 1e-7 and result.errors["w"] <= 1e-7
    printed = capsys.readouterr().out
    assert "returned 2 gradient(s) but 3 were expected" in printed
    assert "db is missing" in printed


def test_single_gradient_for_two_inputs():
    inputs = {"x": randn(4, 3, seed=17), "w": randn(3, 3, seed=18)}
    result = check_op(matmul_forward, lambda dout, cache: matmul_backward(dout, cache)[0], inputs)
    assert not result.passed
    assert "returned 1 gradient(s) but 2 were expected" in result.inputs[1].hint


def test_forward_that_changes_its_input(capsys):
    x = randn(3, 5, seed=19)
    original = host(x).copy()
    result = check_backward(softmax_forward_in_place, softmax_backward, {"x": x})
    assert result.mutated_inputs == ["x"]
    assert not result.passed
    assert "your forward changed its input x in place" in capsys.readouterr().out
    np.testing.assert_array_equal(host(x), original)  # the checker put the caller's x back
    # the gradient itself is judged at the real x, not at a drifting one
    assert result.errors["x"] <= 1e-7


def test_backward_that_changes_an_input_through_the_cache(capsys):
    def scale_backward_clobbers_x(dout, cache):
        x, w = cache
        dw = x.T @ dout
        x *= 0  # "free" memory the caller still owns
        return dout @ w.T, dw

    inputs = {"x": randn(4, 3, seed=20), "w": randn(3, 3, seed=21)}
    original = host(inputs["x"]).copy()
    result = check_backward(matmul_forward, scale_backward_clobbers_x, inputs)
    assert result.mutated_by_backward == ["x"]
    assert not result.passed
    assert "backward changed the input x in place" in capsys.readouterr().out
    np.testing.assert_array_equal(host(inputs["x"]), original)


def test_softmax_missing_sum_term_is_caught():
    result = check_op(softmax_forward, softmax_backward_drops_sum, {"x": randn(3, 5, seed=22)})
    assert not result.passed
    assert result.errors["x"] > 1e-2


def test_softmax_unweighted_sum_caught_only_because_g_is_random():
    """Why check_op never uses an all-ones upstream gradient.

    With g = 1 both the right dx = y ⊙ (g − Σ_j y_j g_j) and the buggy
    y ⊙ (g − mean(g)) are zero (Σ_j y_j = 1), so the bug is invisible; with a
    random g they differ and the checker catches it.
    """
    x = randn(3, 5, seed=23)
    y, cache = softmax_forward(x)
    xp = array_module(x)
    ones = xp.ones_like(y)
    right, buggy = host(softmax_backward(ones, cache)), host(softmax_backward_unweighted_sum(ones, cache))
    assert np.abs(right).max() <= 1e-15 and np.abs(buggy).max() <= 1e-15
    np.testing.assert_allclose(buggy, right, rtol=0, atol=1e-15)
    # and finite differences with g = 1 see a constant (Σ softmax = 1): nothing to compare against
    numeric = host(numerical_gradient(lambda x_: softmax_forward(x_)[0].sum(), x))
    assert np.abs(numeric).max() <= 1e-8

    g = randn(3, 5, seed=24)
    assert rel_error(softmax_backward(g, cache), softmax_backward_unweighted_sum(g, cache)) > 1e-2
    result = check_op(softmax_forward, softmax_backward_unweighted_sum, {"x": x})
    assert not result.passed
    assert result.errors["x"] > 1e-2


def test_one_wrong_element_is_located(capsys):
    """The verdict points at the worst element: its index and both values."""
    def backward(dout, cache):
        dx, dw, db = linear_backward(dout, cache)
        dw = dw.copy()
        dw[1, 2] += 0.5
        return dx, dw, db

    result = check_backward(linear_forward, backward, linear_inputs())
    assert not result.passed
    printed = capsys.readouterr().out
    check_w = result.inputs[1]
    assert check_w.analytic[1, 2] - check_w.numeric[1, 2] == pytest.approx(0.5, abs=1e-7)
    assert (f"worst at index (1, 2): yours {check_w.analytic[1, 2]:.6g}, "
            f"numerical {check_w.numeric[1, 2]:.6g}") in printed
    assert "1 of 15 elements of dw are wrong" in printed


def test_nearly_right_is_not_called_a_constant_factor(capsys):
    result = check_backward(linear_forward, with_backward(lambda dx, dw, db: (dx, dw * (1 + 4e-6), db)),
                            linear_inputs())
    assert not result.passed
    assert 1e-7 < result.errors["w"] < 1e-4
    hint = result.inputs[1].hint
    assert "constant factor" not in hint
    assert "close but above the tolerance" in hint
    # the two values agree to 6 digits: the verdict prints enough digits to show they differ
    line = next(l for l in capsys.readouterr().out.splitlines() if l.strip().startswith("dw "))
    yours, numerical = re.search(r"yours (\S+), numerical (\S+)$", line).groups()
    assert yours != numerical


def test_nan_gradient_fails_with_a_hint():
    def backward(dout, cache):
        dx, dw, db = linear_backward(dout, cache)
        return dx, dw * np.nan, db

    result = check_op(linear_forward, backward, linear_inputs())
    assert not result.passed
    assert result.errors["w"] == float("inf")
    assert "NaN" in result.inputs[1].hint


def test_nan_error_never_hides_behind_a_passing_one():
    check = gradcheck.InputCheck("x", float("nan"), None, np.zeros(1), "")
    fine = gradcheck.InputCheck("w", 1e-12, None, np.zeros(1), "")
    result = gradcheck.CheckResult("op", [fine, check], 1e-7, False, [])
    assert result.worst == float("inf")
    assert not result.passed


def test_all_zero_gradient_hint():
    xp_zeros = lambda a: array_module(a).zeros_like(a)  # noqa: E731
    result = check_op(linear_forward, with_backward(lambda dx, dw, db: (dx, xp_zeros(dw), db)), linear_inputs())
    assert not result.passed
    assert "all zeros" in result.inputs[1].hint


def test_float32_inputs_rejected():
    inputs = {"x": randn(4, 3, dtype=np.float32), "w": randn(3, 5, dtype=np.float32, seed=1)}
    with pytest.raises(TypeError, match=r"input 'x' must be a float64 array.*float32"):
        check_op(linear_forward, linear_backward, inputs)


def test_wrt_unknown_name():
    with pytest.raises(KeyError, match="'z'"):
        check_op(linear_forward, linear_backward, linear_inputs(), wrt=["z"])
