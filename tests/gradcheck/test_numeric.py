"""The relative error and the numerical gradient: what every check is made of."""

import numpy as np
import pytest

from tinymtt import gradcheck
from tinymtt.gradcheck import numerical_gradient, rel_error
from tinymtt.ops import softmax_backward, softmax_forward

from helpers import host, randn


# ---------------------------------------------------------------- rel_error

def test_rel_error_identical_is_zero():
    a = randn(3, 4, seed=25)
    assert rel_error(a, a.copy()) == 0.0
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.zeros((0, 2)), np.zeros((0, 2))) == 0.0


def test_rel_error_symmetric_and_elementwise():
    assert rel_error(np.array([1.0, 3.0]), np.array([1.0, 1.0])) == pytest.approx(0.5)
    assert rel_error(np.array([2.0]), np.array([-2.0])) == pytest.approx(1.0)
    assert rel_error(np.array([1.0, 2.0]), np.array([3.0, 2.0])) == rel_error(np.array([3.0, 2.0]),
                                                                               np.array([1.0, 2.0]))


def test_rel_error_shape_mismatch():
    with pytest.raises(ValueError, match=r"one shape.*\(3,\).*\(3, 1\)"):
        rel_error(np.zeros(3), np.zeros((3, 1)))


def test_rel_error_floor():
    """Elements below 1e-3 of the largest are judged against that level (module docstring)."""
    a, b = np.array([1.0, 1e-8]), np.array([1.0, 2e-8])
    # element-wise the tiny pair differs by a third, but at the scale of the array it is noise
    assert rel_error(a, b, floor=1e-300) == pytest.approx(1 / 3)
    assert rel_error(a, b) == pytest.approx(1e-8 / 2e-3)
    # a wrong element still shows up: an error of 1e-4 · scale reports as 0.1
    assert rel_error(np.array([1.0, 0.0]), np.array([1.0, 2e-4])) == pytest.approx(0.1)


def test_rel_error_nan_and_inf():
    assert rel_error(np.array([1.0, np.nan]), np.array([1.0, 1.0])) == float("inf")
    assert rel_error(np.array([np.nan]), np.array([np.nan])) == float("inf")
    assert rel_error(np.array([1.0, np.inf]), np.array([1.0, 5.0])) == float("inf")
    assert rel_error(np.array([1.0, np.inf]), np.array([1.0, np.inf])) == 0.0


# ---------------------------------------------------------------- numerical_gradient

@pytest.mark.parametrize("shape", [(), (5,), (3, 4)])
def test_numerical_gradient_of_cube(shape):
    x = randn(*shape, seed=26)
    before = host(x).copy()
    grad = numerical_gradient(lambda x_: (x_ ** 3).sum(), x)
    assert grad.shape == x.shape and grad.dtype == np.float64
    assert rel_error(grad, 3 * x ** 2) <= gradcheck.TOLERANCE  # rounding ~eps·|f|/h with |f| ~ 40 here
    np.testing.assert_array_equal(host(x), before)  # perturbed and put back exactly


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_numerical_gradient_rejects_non_float64(dtype):
    x = np.arange(3).astype(dtype)
    with pytest.raises(TypeError, match=rf"x must be a float64 array.*got {np.dtype(dtype).name} array of shape \(3,\)"):
        numerical_gradient(lambda x_: (x_ ** 3).sum(), x)


def test_numerical_gradient_needs_a_scalar():
    with pytest.raises(ValueError, match="scalar"):
        numerical_gradient(lambda x_: x_ * 2, randn(3))


def test_numerical_gradient_array_matches_backward():
    x = randn(3, 5, seed=27)
    g = randn(3, 5, seed=28)
    y, cache = softmax_forward(x)
    numeric = gradcheck.numerical_gradient_array(lambda x_: softmax_forward(x_)[0], x, g)
    assert rel_error(numeric, softmax_backward(g, cache)) <= 1e-7
