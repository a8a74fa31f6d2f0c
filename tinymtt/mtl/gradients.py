"""Per-task gradients of the shared parameters, from the model's own backward pass.

The gradient methods need G (T, P): row i = ∇_θ L_i for the P shared numbers
θ (every parameter but the heads ``heads.*``: embedding, task encoder, encoder,
task attention). The model already computes a per-task gradient when told to:
``model.backward(dlosses)`` uses dlosses as ∂L/∂L_τ, so dlosses = s_i·e_i
gives ∇(s_i L_i) alone. After one ``result = model.loss(batch)``:

    for each counted task i:  shared grads ← 0;  model.backward(dlosses = s_i e_i);  G[i] = flatten(shared grads)

T backward passes from one forward pass, no model code copied. Each head
only receives a gradient in its own task's pass and layers accumulate (+=),
so afterwards every head's gradient is exactly ∇(s_i L_i) for its task i --
the task-specific update, ready as it is. A task not counted in the batch
(no target) gets a zero row and no backward pass.
"""

from __future__ import annotations

import numpy

from ..backend import array_module
from ..validation import ShapeError, check_array, describe


def shared_parameter_names(model) -> list:
    """The dotted names of the shared parameters: everything but ``heads.*``, in the model's order."""
    return [name for name in model.parameters() if not name.startswith("heads.")]


def parameter_slices(model, names=None) -> dict:
    """{name: slice} giving where each parameter sits in a flattened row of G (names in order)."""
    names = shared_parameter_names(model) if names is None else names
    params, layout, start = model.parameters(), {}, 0
    for name in names:
        layout[name] = slice(start, start + int(params[name].size))
        start += int(params[name].size)
    return layout


def _check_names(model, names):
    grads = model.gradients()
    unknown = [name for name in names if name not in grads]
    if unknown:
        raise KeyError(f"shared_names holds unknown parameter(s) {unknown}; the model's are {list(grads)}")
    return grads


def task_gradients(model, shared_names=None, counted=None, scales=None):
    """G (T, P): row i = ∇_shared (s_i L_i), flattened in the order of ``shared_names``.

    Call after ``result = model.loss(batch)``. counted: which tasks had a
    target, ``result.counted`` (a dict in task order or T booleans); None runs
    a backward pass for every task (a task with no example has loss 0, so its
    row is zero all the same, at the price of the pass). scales: s (T,),
    default 1 (the trainer passes the strategy's task weights). Leaves each
    head's gradient = ∇(s_i L_i) of its task (module docstring); the shared
    gradients are overwritten by ``set_gradients``.
    """
    shared_names = shared_parameter_names(model) if shared_names is None else list(shared_names)
    grads = _check_names(model, shared_names)
    num_tasks = model.config.num_tasks
    if counted is None:
        counted = [True] * num_tasks
    counted = list(counted.values()) if isinstance(counted, dict) else list(counted)
    scales = numpy.ones(num_tasks) if scales is None else numpy.asarray(scales, dtype=numpy.float64)
    if len(counted) != num_tasks or scales.shape != (num_tasks,):
        raise ShapeError(f"counted and scales must have one entry per task ({num_tasks}), got {len(counted)} "
                         f"and {describe(scales)}")
    xp = array_module(*grads.values())
    model.zero_grad()
    rows = []
    for task in range(num_tasks):                      # one backward pass per task: the method's cost
        if not counted[task]:
            rows.append(None)
            continue
        for name in shared_names:
            grads[name][...] = 0
        dlosses = numpy.zeros(num_tasks)
        dlosses[task] = scales[task]
        model.backward(dlosses=dlosses)
        rows.append(xp.concatenate([grads[name].ravel() for name in shared_names]))
    size = sum(int(grads[name].size) for name in shared_names)
    dtype = grads[shared_names[0]].dtype
    return xp.stack([xp.zeros(size, dtype=dtype) if row is None else row for row in rows])


def set_gradients(model, combined_shared, head_grads=None, shared_names=None):
    """Write the combined shared gradient (P,) into the model's gradients, in place.

    head_grads: {name: array} to write as well (None: keep the heads' gradients,
    which ``task_gradients`` left as each task's own).
    """
    shared_names = shared_parameter_names(model) if shared_names is None else list(shared_names)
    grads = _check_names(model, shared_names)
    size = sum(int(grads[name].size) for name in shared_names)
    dtype = grads[shared_names[0]].dtype
    check_array(combined_shared, "combined_shared", ndim=1, kind="float")
    if combined_shared.shape != (size,) or combined_shared.dtype != dtype:
        raise ShapeError(f"combined_shared must be a {dtype} array of shape ({size},) (the shared parameters, "
                         f"flattened), got {describe(combined_shared)}")
    for name, part in parameter_slices(model, shared_names).items():
        grads[name][...] = combined_shared[part].reshape(grads[name].shape)
    for name, value in (head_grads or {}).items():
        if name not in grads or name in shared_names:
            raise KeyError(f"head_grads names {name!r}, which is not a task-specific parameter of the model")
        grads[name][...] = value
