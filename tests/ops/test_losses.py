"""cross_entropy, mse, weighted_sum: finite differences, the torch oracle, masks, stability, bad inputs."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import check_op, rel_error
from tinymtt.ops.losses import (cross_entropy_backward, cross_entropy_forward, mse_backward, mse_forward,
                                weighted_sum_backward, weighted_sum_forward)
from tinymtt.validation import ShapeError

from helpers import host, randint, randn, to_torch, torch_grads, torch_or_skip

# Finite-difference step. Central differences carry O(h²) truncation plus ε·|f|/h rounding;
# in float64 the two balance near h = ε^(1/3) ≈ 6e-6. At the checker's default h = 1e-6 the
# rounding part alone reaches ~1e-7 of the smaller gradient elements here, so a right backward
# can land on either side of the 1e-7 threshold depending on the seed; h = 1e-5 leaves a margin
# of 5-10x (measured over many seeds) without changing the threshold.
H = 1e-5


def _mask(shape, kind, seed=0):
    """None, all True, some hidden (at least one kept and one hidden), or all hidden."""
    if kind == "none":
        return None
    if kind == "all":
        host_mask = np.ones(shape, dtype=bool)
    elif kind == "hidden":
        host_mask = np.zeros(shape, dtype=bool)
    else:
        host_mask = np.random.default_rng(seed).random(shape) < 0.5
        host_mask.flat[0], host_mask.flat[-1] = True, False
        if host_mask.size == 1:
            host_mask.flat[0] = True
    return backend.to_device(host_mask)


def _scalar_dout(seed):
    return backend.to_device(np.random.default_rng(seed).standard_normal(()), dtype=np.float64)


# --- cross-entropy -----------------------------------------------------------

# (logits shape (..., C), mask kind): batch 1, C = 2, (B, S, C) tokens, masks hiding some / all
CE_CASES = [
    ((1, 2), "none"),
    ((4, 3), "none"),
    ((4, 3), "some"),
    ((2, 5, 7), "some"),
    ((2, 5, 7), "all"),
    ((1, 1, 2), "none"),
    ((3, 4, 2), "hidden"),
    ((6,), "none"),            # a single item: targets is 0-d
]


def _ce_inputs(shape, mask_kind, seed=0, scale=2.0):
    logits = randn(*shape, seed=seed, scale=scale)
    mask = _mask(shape[:-1], mask_kind, seed=seed + 1)
    host_targets = np.random.default_rng(seed + 2).integers(0, shape[-1], size=shape[:-1])
    if mask is not None:
        host_targets = np.where(host(mask), host_targets, -1)   # padding at hidden items
    return logits, backend.to_device(host_targets, dtype=np.int64), mask


@pytest.mark.parametrize("shape, mask_kind", CE_CASES)
def test_cross_entropy_gradient_matches_finite_differences(shape, mask_kind):
    # A mean over N items is O(1) while each gradient element is O(1/N): at h = 1e-6 the rounding
    # noise ε·|loss|/h reaches ~1e-6 of the small elements (see H above).
    logits, targets, mask = _ce_inputs(shape, mask_kind, scale=1.0)
    result = check_op(cross_entropy_forward, cross_entropy_backward,
                      {"logits": logits, "targets": targets, "mask": mask}, wrt=["logits"], h=H)
    assert result.passed, result.report()
    assert result.worst <= 1e-7


@pytest.mark.parametrize("shape, mask_kind", [c for c in CE_CASES if c[1] != "hidden"])
def test_cross_entropy_agrees_with_torch(shape, mask_kind):
    torch = torch_or_skip()
    logits, targets, mask = _ce_inputs(shape, mask_kind, seed=3, scale=3.0)
    dout = _scalar_dout(4)
    loss, cache = cross_entropy_forward(logits, targets, mask)
    dlogits = cross_entropy_backward(dout, cache)
    logits_t = to_torch(logits)
    torch_targets = torch.tensor(host(targets)).reshape(-1)   # hidden items hold −1
    loss_t = torch.nn.functional.cross_entropy(logits_t.reshape(-1, shape[-1]), torch_targets,
                                               ignore_index=-1, reduction="mean")
    (dlogits_t,) = torch_grads(loss_t, dout, logits_t)
    assert rel_error(loss, loss_t.detach().numpy()) <= 1e-9
    assert rel_error(dlogits, dlogits_t) <= 1e-9


def test_cross_entropy_with_nothing_counted_is_zero_with_zero_gradient():
    logits, targets, mask = _ce_inputs((3, 4, 5), "hidden")
    loss, cache = cross_entropy_forward(logits, targets, mask)
    dlogits = cross_entropy_backward(_scalar_dout(5), cache)
    assert loss.shape == () and float(host(loss)) == 0.0
    assert dlogits.shape == (3, 4, 5) and not np.any(host(dlogits))


def test_cross_entropy_ignores_hidden_items_whatever_they_hold():
    logits, targets, mask = _ce_inputs((4, 6, 3), "some", seed=6)
    loss, cache = cross_entropy_forward(logits, targets, mask)
    grad = cross_entropy_backward(1.0, cache)
    # other junk at hidden items: huge ids, NaN logits -- the loss and gradient must not change
    hidden = ~host(mask)
    junk_targets = backend.to_device(np.where(hidden, 10**6, host(targets)), dtype=np.int64)
    junk_logits = backend.to_device(np.where(hidden[..., None], np.nan, host(logits)), dtype=np.float64)
    loss2, cache2 = cross_entropy_forward(junk_logits, junk_targets, mask)
    grad2 = cross_entropy_backward(1.0, cache2)
    assert float(host(loss2)) == float(host(loss))
    assert np.array_equal(host(grad2), host(grad))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_huge_logits_are_stable(dtype):
    logits = backend.to_device([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], dtype=dtype)
    targets = backend.to_device([1, 2], dtype=np.int64)
    loss, cache = cross_entropy_forward(logits, targets)
    dlogits = cross_entropy_backward(1.0, cache)
    assert np.isfinite(float(host(loss)))
    assert rel_error(loss, np.array(1e4)) <= 1e-7   # (2e4 + 0) / 2
    expected = np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]]) / 2
    assert np.allclose(host(dlogits), expected, rtol=0, atol=1e-7)


def test_cross_entropy_huge_logits_agree_with_torch():
    torch = torch_or_skip()
    logits, targets, _ = _ce_inputs((5, 4), "none", seed=7, scale=1e4)
    dout = _scalar_dout(8)
    loss, cache = cross_entropy_forward(logits, targets)
    logits_t = to_torch(logits)
    loss_t = torch.nn.functional.cross_entropy(logits_t, torch.tensor(host(targets)))
    (dlogits_t,) = torch_grads(loss_t, dout, logits_t)
    assert rel_error(loss, loss_t.detach().numpy()) <= 1e-9
    assert rel_error(cross_entropy_backward(dout, cache), dlogits_t) <= 1e-9


@pytest.mark.parametrize("dout", ["array64", "python"])
def test_cross_entropy_float32_stays_float32(dout):
    logits, targets, mask = _ce_inputs((2, 3, 4), "some")
    loss, cache = cross_entropy_forward(logits.astype(np.float32), targets.astype(np.int32), mask)
    upstream = _scalar_dout(9) if dout == "array64" else 0.7   # a float64 dout must not upcast
    dlogits = cross_entropy_backward(upstream, cache)
    assert loss.dtype == np.float32 and loss.ndim == 0 and hasattr(loss, "shape")
    assert dlogits.dtype == np.float32


def test_cross_entropy_backward_does_not_mutate_dout():
    logits, targets, mask = _ce_inputs((3, 4), "some")
    _, cache = cross_entropy_forward(logits, targets, mask)
    dout = _scalar_dout(10)
    before = host(dout).copy()
    cross_entropy_backward(dout, cache)
    assert np.array_equal(host(dout), before)


def test_cross_entropy_bad_inputs_name_the_argument():
    logits, targets, mask = _ce_inputs((2, 3, 4), "some")
    with pytest.raises(TypeError, match="targets"):
        cross_entropy_forward(logits, targets.astype(np.float64))
    with pytest.raises(ShapeError, match="targets"):
        cross_entropy_forward(logits, backend.to_device(np.full((2, 3), 4), dtype=np.int64))   # = C
    with pytest.raises(ShapeError, match="targets"):
        cross_entropy_forward(logits, backend.to_device(np.full((2, 3), -1), dtype=np.int64))  # unmasked padding
    with pytest.raises(ShapeError, match="targets"):
        cross_entropy_forward(logits, randint(0, 4, (2, 4)))
    with pytest.raises(ShapeError, match="mask"):
        cross_entropy_forward(logits, targets, mask[:, :1])
    with pytest.raises(TypeError, match="mask"):
        cross_entropy_forward(logits, targets, mask.astype(np.float64))
    with pytest.raises(TypeError, match="logits"):
        cross_entropy_forward(targets, targets[..., 0])
    with pytest.raises(ShapeError, match="logits"):
        cross_entropy_forward(randn(2, 0), randint(0, 1, (2,)))
    _, cache = cross_entropy_forward(logits, targets, mask)
    with pytest.raises(ShapeError, match="dout"):
        cross_entropy_backward(randn(2), cache)
    with pytest.raises(TypeError, match="dout"):
        cross_entropy_backward("1.0", cache)


# --- mean squared error -----------------------------------------------------

# (pred shape, mask shape or None, mask kind): batch 1, a broadcast (B, 1) mask, masks hiding some / all
MSE_CASES = [
    ((1, 1), None, "none"),
    ((4, 3), None, "none"),
    ((4, 3), (4, 3), "some"),
    ((4, 3), (4, 1), "some"),
    ((2, 3, 2), (3, 2), "some"),
    ((2, 3, 2), (2, 3, 2), "hidden"),
    ((5,), (5,), "all"),
]


def _mse_inputs(shape, mask_shape, mask_kind, seed=0):
    pred = randn(*shape, seed=seed)
    target = randn(*shape, seed=seed + 1)
    mask = None if mask_shape is None else _mask(mask_shape, mask_kind, seed=seed + 2)
    return pred, target, mask


@pytest.mark.parametrize("shape, mask_shape, mask_kind", MSE_CASES)
def test_mse_gradient_matches_finite_differences(shape, mask_shape, mask_kind):
    pred, target, mask = _mse_inputs(shape, mask_shape, mask_kind)
    result = check_op(mse_forward, mse_backward, {"pred": pred, "target": target, "mask": mask}, wrt=["pred"],
                      h=H)
    assert result.passed, result.report()
    assert result.worst <= 1e-7


@pytest.mark.parametrize("shape, mask_shape, mask_kind", [c for c in MSE_CASES if c[2] != "hidden"])
def test_mse_agrees_with_torch(shape, mask_shape, mask_kind):
    torch = torch_or_skip()
    pred, target, mask = _mse_inputs(shape, mask_shape, mask_kind, seed=11)
    dout = _scalar_dout(12)
    loss, cache = mse_forward(pred, target, mask)
    dpred = mse_backward(dout, cache)
    pred_t, target_t = to_torch(pred), to_torch(target, requires_grad=False)
    keep = torch.ones(shape, dtype=torch.bool) if mask is None else \
        torch.tensor(np.broadcast_to(host(mask), shape).copy())
    loss_t = torch.nn.functional.mse_loss(pred_t[keep], target_t[keep])
    (dpred_t,) = torch_grads(loss_t, dout, pred_t)
    assert rel_error(loss, loss_t.detach().numpy()) <= 1e-9
    assert rel_error(dpred, dpred_t) <= 1e-9


def test_mse_with_nothing_counted_is_zero_with_zero_gradient():
    pred, target, mask = _mse_inputs((3, 2), (3, 1), "hidden")
    loss, cache = mse_forward(pred, target, mask)
    dpred = mse_backward(_scalar_dout(13), cache)
    assert loss.shape == () and float(host(loss)) == 0.0
    assert dpred.shape == (3, 2) and not np.any(host(dpred))


def test_mse_missing_targets_stored_as_nan_are_ignored():
    pred, target, mask = _mse_inputs((4, 3), (4, 3), "some", seed=14)
    host_target = np.where(host(mask), host(target), np.nan)
    loss, cache = mse_forward(pred, backend.to_device(host_target, dtype=np.float64), mask)
    dpred = mse_backward(1.0, cache)
    kept = host(mask)
    expected = ((host(pred) - host(target))[kept] ** 2).mean()
    assert rel_error(loss, np.array(expected)) <= 1e-12
    assert np.all(np.isfinite(host(dpred))) and not np.any(host(dpred)[~kept])


def test_mse_float32_stays_float32():
    pred, target, mask = _mse_inputs((3, 4), (3, 1), "some")
    loss, cache = mse_forward(pred.astype(np.float32), target.astype(np.float32), mask)
    dpred = mse_backward(_scalar_dout(15), cache)   # float64 dout must not upcast
    assert loss.dtype == np.float32 and loss.ndim == 0 and dpred.dtype == np.float32


def test_mse_backward_does_not_mutate_dout():
    pred, target, mask = _mse_inputs((3, 4), (3, 4), "some")
    _, cache = mse_forward(pred, target, mask)
    dout = _scalar_dout(16)
    before = host(dout).copy()
    mse_backward(dout, cache)
    assert np.array_equal(host(dout), before)


def test_mse_bad_inputs_name_the_argument():
    pred, target, mask = _mse_inputs((3, 4), (3, 4), "some")
    with pytest.raises(ShapeError, match="target"):
        mse_forward(pred, target[:, :2])
    with pytest.raises(TypeError, match="target"):
        mse_forward(pred, target.astype(np.float32))
    with pytest.raises(TypeError, match="pred"):
        mse_forward(pred.astype(np.int64), target)
    with pytest.raises(ShapeError, match="mask"):
        mse_forward(pred, target, mask[:, 0])          # (3,) does not broadcast to (3, 4): needs [:, None]
    with pytest.raises(ShapeError, match="mask"):
        mse_forward(pred, target, mask[None])          # more axes than pred
    with pytest.raises(TypeError, match="mask"):
        mse_forward(pred, target, mask.astype(np.int64))
    _, cache = mse_forward(pred, target, mask)
    with pytest.raises(ShapeError, match="dout"):
        mse_backward(randn(3, 4), cache)


# --- weighted sum ------------------------------------------------------------

@pytest.mark.parametrize("num_tasks", [1, 3, 5])
def test_weighted_sum_gradient_matches_finite_differences(num_tasks):
    losses = randn(num_tasks, seed=17) ** 2
    weights = randn(num_tasks, seed=18)
    result = check_op(weighted_sum_forward, weighted_sum_backward, {"losses": losses, "weights": weights},
                      h=H)
    assert result.passed, result.report()
    assert result.worst <= 1e-7


@pytest.mark.parametrize("num_tasks", [1, 3, 5])
def test_weighted_sum_agrees_with_torch(num_tasks):
    losses = randn(num_tasks, seed=19) ** 2
    weights = randn(num_tasks, seed=20)
    dout = _scalar_dout(21)
    total, cache = weighted_sum_forward(losses, weights)
    dlosses, dweights = weighted_sum_backward(dout, cache)
    losses_t, weights_t = to_torch(losses), to_torch(weights)
    total_t = (weights_t * losses_t).sum()
    dlosses_t, dweights_t = torch_grads(total_t, dout, losses_t, weights_t)
    assert total.shape == ()
    assert rel_error(total, total_t.detach().numpy()) <= 1e-9
    assert rel_error(dlosses, dlosses_t) <= 1e-9
    assert rel_error(dweights, dweights_t) <= 1e-9


def test_weighted_sum_float32_and_dout_untouched():
    losses = (randn(3, seed=22) ** 2).astype(np.float32)
    weights = randn(3, seed=23, dtype=np.float32)
    total, cache = weighted_sum_forward(losses, weights)
    dout = _scalar_dout(24)
    before = host(dout).copy()
    grads = weighted_sum_backward(dout, cache)
    assert total.dtype == np.float32 and total.ndim == 0
    assert all(g.dtype == np.float32 for g in grads)
    assert np.array_equal(host(dout), before)


def test_weighted_sum_bad_inputs_name_the_argument():
    losses, weights = randn(3, seed=25), randn(3, seed=26)
    with pytest.raises(ShapeError, match="losses.*weights"):
        weighted_sum_forward(losses, weights[:2])
    with pytest.raises(ShapeError, match="losses"):
        weighted_sum_forward(losses[None], weights)
    with pytest.raises(TypeError, match="weights"):
        weighted_sum_forward(losses, weights.astype(np.int64))
    _, cache = weighted_sum_forward(losses, weights)
    with pytest.raises(ShapeError, match="dout"):
        weighted_sum_backward(randn(3), cache)
