"""Inverted dropout."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.backend import device_rng
from tinymtt.gradcheck import check_op
from tinymtt.ops import dropout_backward, dropout_forward

from helpers import host, randn

SHAPES = [(4, 5), (1, 1, 3), (9,), (2, 2, 3, 4)]


def fixed_mask_dropout(p, seed):
    """dropout_forward with a fresh generator of one seed at every call, so the
    gradient checker's many forward passes all see the same mask."""
    def forward(x):
        return dropout_forward(x, p, device_rng(seed), True)
    return forward


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_gradcheck(shape, p):
    forward = fixed_mask_dropout(p, seed=3)
    result = check_op(forward, dropout_backward, {"x": randn(*shape, seed=1)})
    assert result.passed, result.report()
    assert result.worst <= 1e-7


def test_dropout_values_are_zero_or_scaled_and_backward_uses_the_same_mask():
    p = 0.25
    x = randn(40, 50, seed=2)
    out, cache = dropout_forward(x, p, device_rng(4), True)
    x_h, out_h = host(x), host(out)
    kept = out_h != 0
    assert 0 < kept.sum() < kept.size
    np.testing.assert_allclose(out_h[kept], x_h[kept] / (1 - p), rtol=1e-15)
    dout = randn(40, 50, seed=5)
    dx = host(dropout_backward(dout, cache))
    np.testing.assert_allclose(dx[kept], host(dout)[kept] / (1 - p), rtol=1e-15)
    assert np.all(dx[~kept] == 0)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_kept_fraction_is_one_minus_p(p):
    x = backend.to_device(np.ones((1000, 1000)), dtype=np.float32)
    out, _ = dropout_forward(x, p, device_rng(6), True)
    kept = float(host(out != 0).mean())
    # the fraction's standard deviation is sqrt(p(1-p)/1e6) <= 5e-4: 3e-3 is 6 sigma
    assert abs(kept - (1 - p)) < 3e-3


def test_expected_output_equals_input():
    p = 0.3
    columns = randn(64, seed=7)
    x = backend.get_array_module().broadcast_to(columns, (20000, 64)).copy()
    out, _ = dropout_forward(x, p, device_rng(8), True)
    mean = host(out.mean(axis=0))
    # per column the mean of 20000 draws has std |x|·sqrt(p/(1-p)/20000) ≈ 0.0046|x|
    np.testing.assert_allclose(mean, host(columns), rtol=0.03)


def test_same_seed_same_mask_other_seed_other_mask():
    x = randn(30, 30, seed=9)
    first, _ = dropout_forward(x, 0.5, device_rng(10), True)
    again, _ = dropout_forward(x, 0.5, device_rng(10), True)
    other, _ = dropout_forward(x, 0.5, device_rng(11), True)
    np.testing.assert_array_equal(host(first), host(again))
    assert not np.array_equal(host(first), host(other))


@pytest.mark.parametrize("p, train", [(0.5, False), (0.0, True), (0.0, False)])
def test_identity_when_evaluating_or_p_zero(p, train):
    x = randn(3, 4, seed=12)
    out, cache = dropout_forward(x, p, None, train)   # nothing drawn: no generator needed
    np.testing.assert_array_equal(host(out), host(x))
    assert cache.mask is None
    dout = randn(3, 4, seed=13)
    np.testing.assert_array_equal(host(dropout_backward(dout, cache)), host(dout))


def test_eval_mode_does_not_draw_from_the_generator():
    rng = device_rng(14)
    dropout_forward(randn(5, seed=15), 0.5, rng, False)
    after_eval = host(rng.random((4,)))
    np.testing.assert_array_equal(after_eval, host(device_rng(14).random((4,))))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved(dtype):
    x = randn(6, 7, seed=16, dtype=dtype)
    out, cache = dropout_forward(x, 0.4, device_rng(17), True)
    dx = dropout_backward(randn(6, 7, seed=18, dtype=dtype), cache)
    assert out.dtype == dtype and cache.mask.dtype == dtype and dx.dtype == dtype


def test_high_drop_rate_stays_finite():
    x = randn(200, 200, seed=19, dtype=np.float32)
    out, cache = dropout_forward(x, 0.999, device_rng(20), True)
    assert np.all(np.isfinite(host(out)))
    np.testing.assert_allclose(host(out)[host(out) != 0], host(x)[host(out) != 0] * 1000, rtol=1e-4)


def test_backward_does_not_mutate_dout():
    _, cache = dropout_forward(randn(5, 6, seed=21), 0.5, device_rng(22), True)
    dout = randn(5, 6, seed=23)
    before = host(dout).copy()
    dropout_backward(dout, cache)
    np.testing.assert_array_equal(host(dout), before)


def test_forward_does_not_mutate_x():
    x = randn(5, 6, seed=24)
    before = host(x).copy()
    dropout_forward(x, 0.5, device_rng(25), True)
    np.testing.assert_array_equal(host(x), before)


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, "0.5", None, True])
def test_rejects_bad_p(p):
    with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\)"):
        dropout_forward(randn(3, seed=26), p, device_rng(27), True)


@pytest.mark.parametrize("train", [1, 0, "yes", None])
def test_rejects_non_bool_train(train):
    with pytest.raises(TypeError, match="train must be a bool"):
        dropout_forward(randn(3, seed=28), 0.5, device_rng(29), train)


def test_training_without_generator_is_a_clear_error():
    with pytest.raises(ValueError, match="rng is None.*device_rng"):
        dropout_forward(randn(3, seed=30), 0.5, None, True)


def test_rejects_object_that_is_not_a_generator():
    with pytest.raises(TypeError, match="rng must be a generator"):
        dropout_forward(randn(3, seed=31), 0.5, 42, True)


def test_rejects_non_float_x():
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        dropout_forward(backend.to_device(np.arange(3)), 0.5, device_rng(32), True)


@pytest.mark.skipif(not backend.cupy_available(), reason="needs CuPy and a GPU")
def test_generator_on_the_other_device_is_a_clear_error():
    with backend.use("cupy"):
        x = randn(4, seed=33)
    with pytest.raises(TypeError, match="rng on numpy"):
        dropout_forward(x, 0.5, device_rng(34, xp=np), True)
