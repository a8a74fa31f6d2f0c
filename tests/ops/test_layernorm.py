"""layernorm: finite differences, the torch oracle, constant rows, dtype, bad inputs."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import check_op, rel_error
from tinymtt.ops.layernorm import layernorm_backward, layernorm_forward
from tinymtt.validation import ShapeError

from helpers import host, randn, to_torch, torch_grads, torch_or_skip

# Finite-difference step. Central differences carry O(h²) truncation plus ε·|f|/h rounding;
# in float64 the two balance near h = ε^(1/3) ≈ 6e-6. At the checker's default h = 1e-6 the
# rounding part alone reaches ~1e-7 of the smaller gradient elements here, so a right backward
# can land on either side of the 1e-7 threshold depending on the seed; h = 1e-5 leaves a margin
# of 5-10x (measured over many seeds) without changing the threshold.
H = 1e-5

# batch 1, a single position, D = 2, (B, S, D), a 1-d row (D = 1 has its own test)
SHAPES = [(1, 4), (3, 5), (4, 2), (2, 3, 8), (1, 1, 6), (6,)]


def _params(width, seed=20, dtype=np.float64):
    gamma = randn(width, seed=seed, dtype=dtype) + 1.0
    beta = randn(width, seed=seed + 1, dtype=dtype)
    return gamma, beta


# With D = 2 every normalized row is ±(1, −1) up to O(eps/var), so dx is O(eps) and, with a
# tiny eps, below what finite differences resolve: that shape is checked with a large eps.
GRADCHECK_CASES = [(shape, 1e-5) for shape in SHAPES if shape[-1] != 2] + [((4, 2), 0.5), ((3, 5), 0.5)]


@pytest.mark.parametrize("shape, eps", GRADCHECK_CASES)
def test_gradient_matches_finite_differences(shape, eps):
    x = randn(*shape, seed=1, scale=2.0) + 0.5
    gamma, beta = _params(shape[-1])
    result = check_op(layernorm_forward, layernorm_backward, {"x": x, "gamma": gamma, "beta": beta},
                      kwargs={"eps": eps}, h=H)
    assert result.passed, result.report()
    assert result.worst <= 1e-7


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_agrees_with_torch(shape, eps):
    torch = torch_or_skip()
    x = randn(*shape, seed=2, scale=3.0) - 1.0
    gamma, beta = _params(shape[-1], seed=30)
    dout = randn(*shape, seed=3)
    out, cache = layernorm_forward(x, gamma, beta, eps=eps)
    dx, dgamma, dbeta = layernorm_backward(dout, cache)
    x_t, gamma_t, beta_t = to_torch(x), to_torch(gamma), to_torch(beta)
    out_t = torch.nn.functional.layer_norm(x_t, (shape[-1],), gamma_t, beta_t, eps=eps)
    dx_t, dgamma_t, dbeta_t = torch_grads(out_t, dout, x_t, gamma_t, beta_t)
    assert rel_error(out, out_t.detach().numpy()) <= 1e-9
    assert rel_error(dx, dx_t) <= 1e-9
    assert rel_error(dgamma, dgamma_t) <= 1e-9
    assert rel_error(dbeta, dbeta_t) <= 1e-9


def test_width_one_gives_beta_and_zero_input_gradient():
    """D = 1: x̂ = 0 always, so out = β, dx = 0, dγ = 0 and dβ = Σ dout (exactly; torch shows ~1e-16 noise)."""
    x = randn(3, 1, seed=14, scale=5.0)
    gamma, beta = _params(1)
    dout = randn(3, 1, seed=15)
    out, cache = layernorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = layernorm_backward(dout, cache)
    assert np.array_equal(host(out), np.broadcast_to(host(beta), (3, 1)))
    assert not np.any(host(dx)) and not np.any(host(dgamma))
    assert rel_error(dbeta, host(dout).sum(axis=0)) <= 1e-15
    result = check_op(layernorm_forward, layernorm_backward, {"x": x, "gamma": gamma, "beta": beta}, h=H)
    assert result.passed, result.report()


def test_rows_are_normalized():
    x = randn(5, 16, seed=4, scale=7.0) + 3.0
    width = 16
    gamma = backend.to_device(np.ones(width), dtype=np.float64)
    beta = backend.to_device(np.zeros(width), dtype=np.float64)
    out, _ = layernorm_forward(x, gamma, beta, eps=1e-12)
    out = host(out)
    assert np.allclose(out.mean(axis=-1), 0.0, atol=1e-12)
    assert np.allclose(out.var(axis=-1), 1.0, atol=1e-9)   # biased variance, like the forward


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_row_is_finite(dtype):
    host_x = np.random.default_rng(5).standard_normal((3, 6))
    host_x[1] = 4.0                                          # a constant row: variance 0
    x = backend.to_device(host_x, dtype=dtype)
    gamma, beta = _params(6, dtype=dtype)
    out, cache = layernorm_forward(x, gamma, beta)
    assert np.all(np.isfinite(host(out)))
    assert np.allclose(host(out)[1], host(beta), rtol=0, atol=1e-6)   # x̂ = 0 there, so out = β
    grads = layernorm_backward(randn(3, 6, seed=6, dtype=dtype), cache)
    for grad in grads:
        assert np.all(np.isfinite(host(grad)))


def test_constant_row_gradient_is_right():
    torch = torch_or_skip()
    host_x = np.random.default_rng(7).standard_normal((3, 5))
    host_x[0] = -2.0
    x = backend.to_device(host_x, dtype=np.float64)
    gamma, beta = _params(5)
    # Around a constant row x̂ bends on the scale σ = √eps ≈ 3e-3, so the O((h/σ)²) truncation
    # needs a step well below it: here the default h = 1e-6 (worst 4e-8 over 30 draws), not H.
    result = check_op(layernorm_forward, layernorm_backward, {"x": x, "gamma": gamma, "beta": beta}, h=1e-6)
    assert result.passed, result.report()
    dout = randn(3, 5, seed=8)
    out, cache = layernorm_forward(x, gamma, beta)
    x_t, gamma_t, beta_t = to_torch(x), to_torch(gamma), to_torch(beta)
    out_t = torch.nn.functional.layer_norm(x_t, (5,), gamma_t, beta_t, eps=1e-5)
    expected = torch_grads(out_t, dout, x_t, gamma_t, beta_t)
    for ours, theirs in zip(layernorm_backward(dout, cache), expected):
        assert rel_error(ours, theirs) <= 1e-9


def test_large_scale_float32_matches_float64():
    host_x = np.random.default_rng(9).standard_normal((4, 32)) * 1e4
    gamma, beta = _params(32)
    out64, _ = layernorm_forward(backend.to_device(host_x, dtype=np.float64), gamma, beta)
    out32, _ = layernorm_forward(backend.to_device(host_x, dtype=np.float32),
                                 gamma.astype(np.float32), beta.astype(np.float32))
    assert np.all(np.isfinite(host(out32)))
    assert rel_error(out32, out64) <= 1e-5


def test_float32_stays_float32():
    x = randn(2, 3, 4, seed=10, dtype=np.float32)
    gamma, beta = _params(4, dtype=np.float32)
    out, cache = layernorm_forward(x, gamma, beta)
    grads = layernorm_backward(randn(2, 3, 4, seed=11, dtype=np.float32), cache)
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads)


def test_backward_does_not_mutate_dout():
    x = randn(2, 3, 4, seed=12)
    gamma, beta = _params(4)
    dout = randn(2, 3, 4, seed=13)
    before = host(dout).copy()
    _, cache = layernorm_forward(x, gamma, beta)
    layernorm_backward(dout, cache)
    assert np.array_equal(host(dout), before)


def test_bad_inputs_name_the_argument():
    x = randn(2, 3, 4)
    gamma, beta = _params(4)
    with pytest.raises(ShapeError, match="gamma"):
        layernorm_forward(x, randn(3), beta)
    with pytest.raises(ShapeError, match="beta"):
        layernorm_forward(x, gamma, randn(5))
    with pytest.raises(ShapeError, match="gamma"):
        layernorm_forward(x, randn(1, 4), beta)
    with pytest.raises(TypeError, match="gamma"):
        layernorm_forward(x, gamma.astype(np.int64), beta)
    with pytest.raises(TypeError, match="x"):
        layernorm_forward(x.astype(np.int32), gamma, beta)
    with pytest.raises(ShapeError, match="x"):
        layernorm_forward(randn(1).reshape(()), gamma[:1], beta[:1])
    for eps in (0.0, -1e-5, "1e-5", None):
        with pytest.raises(ValueError, match="eps"):
            layernorm_forward(x, gamma, beta, eps=eps)
    _, cache = layernorm_forward(x, gamma, beta)
    with pytest.raises(ShapeError, match="dout"):
        layernorm_backward(randn(2, 4), cache)
