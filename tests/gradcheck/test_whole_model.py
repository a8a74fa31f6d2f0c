"""The whole-model checks: directional derivatives and sampled coordinates pass a right model, catch a wrong one."""

import numpy as np
import pytest

from tinymtt.backend import array_module
from tinymtt.gradcheck import coordinate_check, directional_check
from tinymtt.ops import linear_backward, linear_forward

from helpers import host, randn


# ---------------------------------------------------------------- whole-model checks

class TwoLayerMLP:
    """out = tanh(x·W1 + b1)·W2 + b2, loss = ½·mean over rows of |out − y|², from linear ops."""

    def __init__(self, seed=0, n=6, din=4, hidden=5, dout=3):
        self.x = randn(n, din, seed=seed)
        self.y = randn(n, dout, seed=seed + 1)
        self.params = {"w1": randn(din, hidden, seed=seed + 2, scale=0.5), "b1": randn(hidden, seed=seed + 3),
                       "w2": randn(hidden, dout, seed=seed + 4, scale=0.5), "b2": randn(dout, seed=seed + 5)}

    def loss(self):
        p = self.params
        xp = array_module(self.x)
        pre, _ = linear_forward(self.x, p["w1"], p["b1"])
        out, _ = linear_forward(xp.tanh(pre), p["w2"], p["b2"])
        return 0.5 * ((out - self.y) ** 2).sum() / self.x.shape[0]

    def grads(self):
        p = self.params
        xp = array_module(self.x)
        pre, cache1 = linear_forward(self.x, p["w1"], p["b1"])
        hidden = xp.tanh(pre)
        out, cache2 = linear_forward(hidden, p["w2"], p["b2"])
        dout = (out - self.y) / self.x.shape[0]
        dhidden, dw2, db2 = linear_backward(dout, cache2)
        _, dw1, db1 = linear_backward(dhidden * (1 - hidden ** 2), cache1)
        return {"w1": dw1, "b1": db1, "w2": dw2, "b2": db2}


def test_directional_check_passes_right_model():
    model = TwoLayerMLP()
    before = {k: host(v).copy() for k, v in model.params.items()}
    passed, results = directional_check(model.loss, model.params, model.grads(), num_directions=4)
    assert passed, results
    assert len(results) == 4
    assert max(r.error for r in results) <= 1e-8
    for k, v in model.params.items():  # restored bit for bit
        np.testing.assert_array_equal(host(v), before[k])


def test_coordinate_check_passes_right_model():
    model = TwoLayerMLP(seed=1)
    passed, worst = coordinate_check(model.loss, model.params, model.grads(), per_param=3)
    assert passed, worst
    assert set(worst) == {"w1", "b1", "w2", "b2"}
    assert max(worst.values()) <= 1e-7


@pytest.mark.parametrize("wrong", ["w1", "b2"])
def test_model_checks_catch_one_perturbed_gradient(wrong):
    model = TwoLayerMLP(seed=2)
    grads = model.grads()
    grads[wrong] = grads[wrong] * 1.05
    passed, results = directional_check(model.loss, model.params, grads)
    assert not passed
    assert all(r.error > 1e-5 for r in results)
    passed, worst = coordinate_check(model.loss, model.params, grads)
    assert not passed
    assert worst[wrong] > 1e-3                     # the wrong parameter is named ...
    assert max(worst[k] for k in worst if k != wrong) <= 1e-7  # ... and only it
    assert max(worst, key=worst.get) == wrong


def test_model_checks_catch_a_sign_error():
    model = TwoLayerMLP(seed=3)
    grads = model.grads()
    grads["w2"] = -grads["w2"]
    assert not directional_check(model.loss, model.params, grads)[0]
    passed, worst = coordinate_check(model.loss, model.params, grads)
    assert not passed and worst["w2"] > 0.1


def test_model_checks_reject_bad_arguments():
    model = TwoLayerMLP()
    grads = model.grads()
    del grads["b1"]
    with pytest.raises(KeyError, match="b1"):
        directional_check(model.loss, model.params, grads)
    with pytest.raises(KeyError, match="b1"):
        coordinate_check(model.loss, model.params, grads)
    grads = model.grads()
    grads["w1"] = grads["w1"].T
    with pytest.raises(ValueError, match=r"grads\['w1'\] must have the parameter's shape"):
        directional_check(model.loss, model.params, grads)
    model.params["w2"] = model.params["w2"].astype(np.float32)
    with pytest.raises(TypeError, match="parameter 'w2' must be a float64 array"):
        coordinate_check(model.loss, model.params, model.grads())
