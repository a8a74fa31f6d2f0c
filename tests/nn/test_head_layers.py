"""The task heads with their losses (token / sequence classification, regression):
finite differences through head + loss with `present` hiding examples and a padding
mask hiding positions. (Named test_head_layers: tests/ops/test_heads.py holds the ops.)"""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.backend import init_rng
from tinymtt.nn import RegressionHead, SequenceClassificationHead, TokenClassificationHead, make_head

from helpers import host, randint, randn
from layer_check import check_layer

F64 = "float64"
B, S, D = 4, 5, 6


def mask_and_present(seed=0):
    real = np.arange(S)[None, :] < np.array([5, 3, 1, 4])[:, None]
    present = np.array([True, False, True, True])
    return backend.to_device(real), backend.to_device(present)


def make(kind, outputs=3):
    return make_head(kind, D, outputs, init_rng(1), dtype=F64)


def targets_for(kind, seed=2):
    if kind == "token":
        return randint(0, 3, (B, S), seed=seed)
    if kind == "sequence":
        return randint(0, 3, (B,), seed=seed)
    return randn(B, 3, seed=seed)


@pytest.mark.parametrize("kind", ["token", "sequence", "regression"])
def test_head_and_loss_gradients(kind):
    head = make(kind)
    mask, present = mask_and_present()
    targets = targets_for(kind)

    def forward(h):
        return head.loss(head.forward(h, mask), targets, mask, present)

    check_layer(head, forward, {"h": randn(B, S, D, seed=3)}, name=f"{type(head).__name__} + loss")


@pytest.mark.parametrize("kind", ["token", "sequence", "regression"])
def test_hidden_examples_and_positions_get_no_gradient(kind):
    head = make(kind)
    mask, present = mask_and_present()
    h = randn(B, S, D, seed=4)
    loss = head.loss(head.forward(h, mask), targets_for(kind), mask, present)
    assert loss.shape == () and loss.dtype == np.float64
    dh = host(head.backward(1.0))
    assert not np.any(dh[1])                                   # present[1] is False
    assert not np.any(dh[2, 1:]) and not np.any(dh[3, 4:])     # padding positions
    assert np.all(np.any(dh[0] != 0, axis=-1))


@pytest.mark.parametrize("kind", ["token", "sequence", "regression"])
def test_hidden_examples_do_not_change_the_loss(kind):
    """An absent example's targets and inputs may be anything, even NaN targets."""
    head = make(kind)
    mask, present = mask_and_present()
    h, targets = host(randn(B, S, D, seed=5)), host(targets_for(kind))
    loss = float(head.loss(head.forward(backend.to_device(h), mask), backend.to_device(targets), mask, present))
    h[1] += 10.0
    targets[1] = -1 if kind != "regression" else np.nan
    other = float(head.loss(head.forward(backend.to_device(h), mask), backend.to_device(targets), mask, present))
    assert other == pytest.approx(loss, rel=1e-14)


def test_loss_values_by_hand():
    mask, present = mask_and_present()
    h = randn(B, S, D, seed=6)
    real, keep = host(mask), host(present)
    # token: mean CE over real tokens of present examples
    head = make("token")
    targets = targets_for("token")
    logits = host(head.forward(h, mask))
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_p, host(targets)[..., None], -1)[..., 0]
    counted = real & keep[:, None]
    assert float(head.loss(head.forward(h, mask), targets, mask, present)) == pytest.approx(
        -picked[counted].mean(), rel=1e-13)
    # regression: MSE of masked-mean-pooled features over present examples
    head = make("regression")
    targets = targets_for("regression")
    pooled = (host(h) * real[..., None]).sum(1) / real.sum(1, keepdims=True)
    values = pooled @ host(head.linear.params["weight"]) + host(head.linear.params["bias"])
    np.testing.assert_allclose(host(head.forward(h, mask)), values, rtol=1e-13)
    assert float(head.loss(head.forward(h, mask), targets, mask, present)) == pytest.approx(
        ((values - host(targets))[keep] ** 2).mean(), rel=1e-13)


@pytest.mark.parametrize("kind", ["token", "sequence", "regression"])
def test_no_present_example_gives_zero_loss_and_zero_gradients(kind):
    head = make(kind)
    mask, _ = mask_and_present()
    nobody = backend.to_device(np.zeros(B, dtype=bool))
    loss = head.loss(head.forward(randn(B, S, D, seed=7), mask), targets_for(kind), mask, nobody)
    assert float(loss) == 0.0
    dh = host(head.backward(1.0))
    assert not np.any(dh) and np.all(np.isfinite(dh))
    for k, v in head.gradients().items():
        assert not np.any(host(v)), k


def test_backward_before_loss_is_a_clear_error():
    head = make("sequence")
    head.forward(randn(B, S, D, seed=8))
    with pytest.raises(RuntimeError, match="SequenceClassificationHead.backward was called before loss"):
        head.backward(1.0)


def test_make_head_and_kinds():
    assert isinstance(make("token"), TokenClassificationHead)
    assert isinstance(make("sequence"), SequenceClassificationHead)
    assert isinstance(make("regression"), RegressionHead)
    with pytest.raises(ValueError, match="task kind must be one of"):
        make_head("ranking", D, 3, init_rng(0))
    with pytest.raises(ValueError, match="num_outputs"):
        make_head("token", D, 0, init_rng(0))


def test_bad_targets_are_named():
    mask, present = mask_and_present()
    head = make("sequence")
    logits = head.forward(randn(B, S, D, seed=9), mask)
    with pytest.raises(ValueError, match="targets"):
        head.loss(logits, backend.to_device(np.array([0, 1, 3, 0])), mask, present)   # class 3 of 3
    with pytest.raises(TypeError, match="targets"):
        head.loss(logits, randn(B, seed=1), mask, present)


@pytest.mark.parametrize("kind", ["token", "sequence", "regression"])
def test_mask_and_present_default_to_everything(kind):
    head = make(kind)
    h, targets = randn(B, S, D, seed=10), targets_for(kind)
    everything = backend.to_device(np.ones((B, S), dtype=bool))
    everyone = backend.to_device(np.ones(B, dtype=bool))
    expected = float(head.loss(head.forward(h, everything), targets, everything, everyone))
    assert float(head.loss(head.forward(h), targets)) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("kind", ["token", "sequence", "regression"])
def test_bad_present_and_mask_are_named(kind):
    head = make(kind)
    mask, _ = mask_and_present()
    outputs = head.forward(randn(B, S, D, seed=11), mask)
    with pytest.raises(ValueError, match=r"present must have shape \(B,\)"):
        head.loss(outputs, targets_for(kind), mask, backend.to_device(np.ones(B + 1, dtype=bool)))
    with pytest.raises(TypeError, match="present must be a boolean array"):
        head.loss(outputs, targets_for(kind), mask, backend.to_device(np.ones(B)))
    if kind == "token":
        with pytest.raises(ValueError, match=r"mask must have shape \(B, S\)"):
            head.loss(outputs, targets_for(kind), backend.to_device(np.ones((B, S + 1), dtype=bool)))
