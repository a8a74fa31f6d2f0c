"""Per-task gradients from the model's own backward: rows, sums, heads, masking, writing back."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.config import ModelConfig
from tinymtt.gradcheck import rel_error
from tinymtt.model import MultiTaskTransformer
from tinymtt.mtl import parameter_slices, set_gradients, shared_parameter_names, task_gradients
from tinymtt.validation import ShapeError

from helpers import host

TASKS = [dict(name="sort", kind="token", num_outputs=5),
         dict(name="max", kind="sequence", num_outputs=5),
         dict(name="mean", kind="regression", num_outputs=1)]


def model_and_batch(mode, dtype="float64", task_ids=(0, 1, 2, 0, 1, 2)):
    model = MultiTaskTransformer(ModelConfig(tasks=TASKS, vocab_size=5, max_len=6, d_model=8, num_heads=2, d_ff=16,
                                             num_layers=2, mode=mode, dtype=dtype, seed=2))
    if model.task_attention is not None:
        model.task_attention.params["gate"][...] = 0.5          # open the gate: the streams mix
    rng = np.random.default_rng(0)
    size = len(task_ids)
    batch = dict(inputs=backend.to_device(rng.integers(0, 5, (size, 6))),
                 mask=backend.to_device(np.arange(6)[None, :] < rng.integers(1, 7, size)[:, None]),
                 targets=dict(sort=backend.to_device(rng.integers(0, 5, (size, 6))),
                              max=backend.to_device(rng.integers(0, 5, size)),
                              mean=backend.to_device(rng.standard_normal((size, 1)))))
    if mode == "conditioned":
        batch["task_ids"] = backend.to_device(np.array(task_ids))
    return model, batch


def flat(model, names):
    grads = model.gradients()
    return np.concatenate([host(grads[n]).ravel() for n in names])


def test_shared_names_and_layout():
    model, _ = model_and_batch("joint")
    names = shared_parameter_names(model)
    assert names[0] == "embedding.weight" and "task_attention.gate" in names
    assert not any(n.startswith("heads.") for n in names) and len(names) == len(model.parameters()) - 6
    layout = parameter_slices(model, names)
    assert list(layout) == names and layout[names[-1]].stop == sum(model.parameters()[n].size for n in names)


@pytest.mark.parametrize("mode", ["conditioned", "joint"])
def test_rows_are_the_single_task_gradients(mode):
    model, batch = model_and_batch(mode)
    names = shared_parameter_names(model)
    model.loss(batch)
    singles = []
    for task in range(3):                                # the reference: one plain backward per task
        model.zero_grad()
        model.backward(dlosses=np.eye(3)[task])
        singles.append(flat(model, names))
    model.zero_grad()
    model.backward(dlosses=np.ones(3))
    together = {k: host(v).copy() for k, v in model.gradients().items()}
    scales = np.array([0.5, 2.0, 1.5])
    grads = task_gradients(model, names, scales=scales)
    assert grads.shape == (3, len(singles[0])) and grads.dtype == np.float64
    for task in range(3):                                # row i = ∇(s_i L_i), rounding apart
        assert rel_error(grads[task], scales[task] * singles[task]) <= 1e-12
    # the rows, unscaled, add up to the gradient of Σ L_i
    unscaled = host(grads) / scales[:, None]
    assert rel_error(unscaled.sum(axis=0), np.concatenate([together[n].ravel() for n in names])) <= 1e-12
    # each head holds its own task's gradient, times its scale
    for task in range(3):
        for key in ("linear.weight", "linear.bias"):
            name = f"heads.{task}.{key}"
            assert rel_error(model.gradients()[name], scales[task] * together[name]) <= 1e-12


def test_task_without_target_gets_a_zero_row():
    model, batch = model_and_batch("conditioned", task_ids=(0, 0, 1, 1, 0, 1))    # no "mean" example
    result = model.loss(batch)
    assert result.counted == {"sort": True, "max": True, "mean": False}
    grads = host(task_gradients(model, counted=result.counted))
    assert np.array_equal(grads[2], np.zeros(grads.shape[1]))
    assert (np.abs(grads[:2]).sum(axis=1) > 0).all()


def test_set_gradients_writes_in_place():
    model, batch = model_and_batch("joint", dtype="float32")
    model.loss(batch)
    grads = task_gradients(model)
    assert grads.dtype == np.float32
    before = {k: id(v) for k, v in model.gradients().items()}
    heads = {k: host(v).copy() for k, v in model.gradients().items() if k.startswith("heads.")}
    combined = grads[0] * 2 - grads[1]
    set_gradients(model, combined)
    assert {k: id(v) for k, v in model.gradients().items()} == before      # the same arrays, overwritten
    assert np.array_equal(flat(model, shared_parameter_names(model)), host(combined))
    assert all(np.array_equal(host(model.gradients()[k]), v) for k, v in heads.items())
    set_gradients(model, combined, head_grads={"heads.0.linear.bias": backend.to_device(np.ones(5, np.float32))})
    assert np.array_equal(host(model.gradients()["heads.0.linear.bias"]), np.ones(5))


def test_bad_use_is_named():
    model, batch = model_and_batch("conditioned")
    with pytest.raises(RuntimeError, match="model.loss"):
        task_gradients(model)
    model.loss(batch)
    with pytest.raises(KeyError, match="unknown parameter"):
        task_gradients(model, ["encoder.nothing"])
    with pytest.raises(ShapeError, match="one entry per task"):
        task_gradients(model, scales=[1.0, 2.0])
    size = sum(int(p.size) for n, p in model.parameters().items() if not n.startswith("heads."))
    with pytest.raises(ShapeError, match=r"combined_shared must be a float64 array of shape \(%d,\)" % size):
        set_gradients(model, backend.to_device(np.zeros(size - 1)))
    with pytest.raises(ShapeError, match="combined_shared"):
        set_gradients(model, backend.to_device(np.zeros(size, np.float32)))
    with pytest.raises(KeyError, match="not a task-specific parameter"):
        set_gradients(model, backend.to_device(np.zeros(size)), head_grads={"embedding.weight": 0.0})
