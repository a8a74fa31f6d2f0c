"""task_linear: finite differences, the torch oracle, repeated and unused task ids, a planted bug, bad inputs."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import check_op, rel_error
from tinymtt.ops import task_linear as task_linear_module
from tinymtt.ops.task_linear import task_linear_backward, task_linear_forward
from tinymtt.validation import ShapeError

from helpers import host, randn, to_torch, torch_grads, torch_or_skip

H = 1e-3   # the output is linear in each input: no truncation error, a large step has less rounding


def ids(*values):
    return backend.to_device(np.array(values))


# (x shape, task ids, T): one example; task 1 repeated; tasks never used; a 2-D x (no middle axis); 4-D x
CASES = [((1, 3, 4), (0,), 2), ((4, 2, 3), (1, 0, 1, 1), 3), ((3, 5), (2, 2, 0), 4), ((2, 2, 3, 4), (1, 0), 2)]


@pytest.mark.parametrize("shape, task_ids, tasks", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_gradient_matches_finite_differences(shape, task_ids, tasks, bias):
    x, w = randn(*shape, seed=1), randn(tasks, shape[-1], 5, seed=2)
    inputs = {"x": x, "w": w, "task_ids": ids(*task_ids)}
    wrt = ["x", "w"]
    if bias:
        inputs["b"] = randn(tasks, 5, seed=3)
        wrt.append("b")
    result = check_op(task_linear_forward, task_linear_backward, inputs, wrt, h=H)
    assert result.passed, result.report()
    assert result.worst <= 1e-7


@pytest.mark.parametrize("shape, task_ids, tasks", CASES)
def test_agrees_with_torch(shape, task_ids, tasks):
    torch = torch_or_skip()
    x, w, b = randn(*shape, seed=4), randn(tasks, shape[-1], 3, seed=5), randn(tasks, 3, seed=6)
    task = ids(*task_ids)
    out, cache = task_linear_forward(x, w, task, b)
    dout = randn(*out.shape, seed=7)
    dx, dw, db = task_linear_backward(dout, cache)
    tx, tw, tb = to_torch(x), to_torch(w), to_torch(b)
    index = torch.tensor(host(task))
    rows = tx.reshape(shape[0], -1, shape[-1])
    expected = (rows @ tw[index] + tb[index][:, None, :]).reshape(out.shape)
    assert rel_error(host(out), expected.detach().numpy()) < 1e-12
    for ours, theirs in zip((dx, dw, db), torch_grads(expected, dout, tx, tw, tb)):
        assert rel_error(host(ours), theirs) < 1e-12


def test_each_example_uses_its_tasks_matrix_and_unused_tasks_get_zero():
    x, w = randn(3, 2, 4, seed=8), randn(3, 4, 2, seed=9)
    out, cache = task_linear_forward(x, w, ids(2, 0, 2))
    for n, t in enumerate((2, 0, 2)):
        np.testing.assert_allclose(host(out)[n], host(x)[n] @ host(w)[t], rtol=1e-13)
    dout = randn(3, 2, 2, seed=10)
    _, dw, db = task_linear_backward(dout, cache)
    assert db is None
    assert not np.any(host(dw)[1])                                      # task 1 has no example
    expected = host(x)[0].T @ host(dout)[0] + host(x)[2].T @ host(dout)[2]   # task 2: both examples add
    np.testing.assert_allclose(host(dw)[2], expected, rtol=1e-12)


def test_a_scatter_that_drops_repeated_tasks_is_caught(monkeypatch):
    """The bug scatter_add prevents: dw[ids] += rows keeps one of the repeated writes."""
    def dropping(target, indices, values):
        target[indices] += values
        return target
    monkeypatch.setattr(task_linear_module, "scatter_add", dropping)
    inputs = {"x": randn(3, 2, 4, seed=11), "w": randn(2, 4, 3, seed=12), "task_ids": ids(1, 1, 0)}
    result = check_op(task_linear_forward, task_linear_backward, inputs, ["x", "w"], h=H)
    assert not result.passed and "w" in result.report()


def test_backward_keeps_the_dtype_and_leaves_dout_alone():
    x, w = randn(2, 3, 4, seed=13, dtype=np.float32), randn(2, 4, 5, seed=14, dtype=np.float32)
    out, cache = task_linear_forward(x, w, ids(0, 1))
    assert out.dtype == np.float32
    dout = randn(2, 3, 5, seed=15, dtype=np.float32)
    before = host(dout).copy()
    dx, dw, _ = task_linear_backward(dout, cache)
    assert dx.dtype == dw.dtype == np.float32
    np.testing.assert_array_equal(host(dout), before)


def test_bad_inputs_are_named():
    x, w = randn(2, 3, 4), randn(2, 4, 5)
    with pytest.raises(ValueError, match=r"task_ids must lie in \[0, 2\)"):
        task_linear_forward(x, w, ids(0, 2))
    with pytest.raises(ShapeError, match="task_ids must have shape"):
        task_linear_forward(x, w, ids(0, 1, 1))
    with pytest.raises(ShapeError, match="x must have shape"):
        task_linear_forward(randn(2, 3, 3), w, ids(0, 1))
    with pytest.raises(ShapeError, match="b must have shape"):
        task_linear_forward(x, w, ids(0, 1), randn(3, 5))
    with pytest.raises(TypeError, match="task_ids must be an integer array"):
        task_linear_forward(x, w, backend.to_device(np.array([0.0, 1.0])))
