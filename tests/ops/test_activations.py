"""ReLU and GELU (tanh form)."""

import math
import warnings

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import check_op, rel_error
from tinymtt.ops import gelu_backward, gelu_forward, relu_backward, relu_forward

from helpers import host, randn, to_torch, torch_grads, torch_or_skip

# batch 1, sequence 1, a flat vector, a 4-d (B, H, S, Dh)-like array
SHAPES = [(4, 5), (1, 1, 3), (7,), (2, 3, 1, 4)]


def away_from_zero(*shape, seed=0, dtype=np.float64):
    """Standard-normal inputs pushed at least 0.1 away from ReLU's kink at 0."""
    host_x = np.random.default_rng(seed).standard_normal(shape)
    host_x = host_x + 0.1 * np.sign(host_x)
    host_x[host_x == 0] = 0.5
    return backend.to_device(host_x, dtype=dtype)


def gelu_by_hand(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


# ---------------------------------------------------------------- ReLU


@pytest.mark.parametrize("shape", SHAPES)
def test_relu_forward_values(shape):
    x = randn(*shape, seed=1)
    out, _ = relu_forward(x)
    np.testing.assert_array_equal(host(out), np.maximum(host(x), 0))


@pytest.mark.parametrize("shape", SHAPES)
def test_relu_gradcheck(shape):
    result = check_op(relu_forward, relu_backward, {"x": away_from_zero(*shape, seed=2)})
    assert result.passed, result.report()
    assert result.worst <= 1e-7


@pytest.mark.parametrize("shape", SHAPES)
def test_relu_matches_torch(shape):
    torch = torch_or_skip()
    x = away_from_zero(*shape, seed=3)
    dout = randn(*shape, seed=4)
    out, cache = relu_forward(x)
    dx = relu_backward(dout, cache)
    x_t = to_torch(x)
    out_t = torch.relu(x_t)
    (dx_t,) = torch_grads(out_t, dout, x_t)
    assert rel_error(out, out_t.detach().numpy()) <= 1e-9
    assert rel_error(dx, dx_t) <= 1e-9


def test_relu_gradient_at_zero_is_zero_like_torch():
    torch = torch_or_skip()
    x = backend.to_device(np.array([-1.0, 0.0, 2.0]))
    dout = randn(3, seed=5)
    dx = relu_backward(dout, relu_forward(x)[1])
    x_t = to_torch(x)
    (dx_t,) = torch_grads(torch.relu(x_t), dout, x_t)
    np.testing.assert_array_equal(host(dx), dx_t)
    assert host(dx)[1] == 0


def test_relu_infinities_give_no_nan():
    x = backend.to_device(np.array([-np.inf, -3.0, 2.0, np.inf]), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, cache = relu_forward(x)
        dx = relu_backward(backend.to_device(np.ones(4), dtype=np.float32), cache)
    np.testing.assert_array_equal(host(out), [0, 0, 2, np.inf])
    np.testing.assert_array_equal(host(dx), [0, 0, 1, 1])


# ---------------------------------------------------------------- GELU


@pytest.mark.parametrize("shape", SHAPES)
def test_gelu_forward_matches_formula(shape):
    x = randn(*shape, seed=6, scale=3.0)
    out, _ = gelu_forward(x)
    np.testing.assert_allclose(host(out), gelu_by_hand(host(x)), rtol=1e-14, atol=1e-15)


def test_gelu_known_values():
    x = backend.to_device(np.array([0.0, 1.0, -1.0, 10.0, -10.0]))
    out = host(gelu_forward(x)[0])
    np.testing.assert_allclose(out[:3], [0.0, 0.8411919906082768, -0.15880800939172324], rtol=1e-14, atol=0)
    assert out[3] == 10.0 and abs(out[4]) < 1e-20   # saturated: x and 0


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [1.0, 4.0])   # 4: the tails, where tanh bends over
def test_gelu_gradcheck(shape, scale):
    result = check_op(gelu_forward, gelu_backward, {"x": randn(*shape, seed=7, scale=scale)})
    assert result.passed, result.report()
    assert result.worst <= 1e-7


@pytest.mark.parametrize("shape", SHAPES)
def test_gelu_matches_torch(shape):
    torch = torch_or_skip()
    x = randn(*shape, seed=8, scale=2.0)
    dout = randn(*shape, seed=9)
    out, cache = gelu_forward(x)
    dx = gelu_backward(dout, cache)
    x_t = to_torch(x)
    out_t = torch.nn.functional.gelu(x_t, approximate="tanh")
    (dx_t,) = torch_grads(out_t, dout, x_t)
    assert rel_error(out, out_t.detach().numpy()) <= 1e-9
    assert rel_error(dx, dx_t) <= 1e-9


@pytest.mark.parametrize("dtype, big", [(np.float32, 1e30), (np.float32, 3e38), (np.float64, 1e300)])
def test_gelu_huge_inputs_stay_finite(dtype, big):
    # x³ would overflow to inf, and (1 − tanh²)·x² to 0·inf = NaN, without care
    x = backend.to_device(np.array([-big, -1e4, -20.0, 20.0, 1e4, big]), dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, cache = gelu_forward(x)
        dx = gelu_backward(backend.to_device(np.ones(6), dtype=dtype), cache)
    out, dx = host(out), host(dx)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dx))
    np.testing.assert_array_equal(out[[0, 1]], [0, 0])
    np.testing.assert_allclose(out[[3, 4, 5]], host(x)[[3, 4, 5]], rtol=1e-6)
    np.testing.assert_allclose(dx, [0, 0, 0, 1, 1, 1], atol=1e-6)


# ---------------------------------------------------------------- both


OPS = [(relu_forward, relu_backward), (gelu_forward, gelu_backward)]


@pytest.mark.parametrize("forward, backward", OPS)
def test_float32_preserved(forward, backward):
    x = randn(3, 4, seed=10, dtype=np.float32)
    out, cache = forward(x)
    dx = backward(randn(3, 4, seed=11, dtype=np.float32), cache)
    assert out.dtype == np.float32 and dx.dtype == np.float32


@pytest.mark.parametrize("forward, backward", OPS)
def test_backward_does_not_mutate_dout(forward, backward):
    _, cache = forward(randn(5, 6, seed=12))
    dout = randn(5, 6, seed=13)
    before = host(dout).copy()
    backward(dout, cache)
    np.testing.assert_array_equal(host(dout), before)


@pytest.mark.parametrize("forward, backward", OPS)
def test_forward_does_not_mutate_x(forward, backward):
    x = randn(5, 6, seed=14)
    before = host(x).copy()
    forward(x)
    np.testing.assert_array_equal(host(x), before)


@pytest.mark.parametrize("forward", [relu_forward, gelu_forward])
def test_rejects_non_float_input(forward):
    with pytest.raises(TypeError, match="x must be a floating-point array.*int64"):
        forward(backend.to_device(np.arange(4)))
    with pytest.raises(TypeError, match="x must be a NumPy or CuPy array.*list"):
        forward([1.0, 2.0])
