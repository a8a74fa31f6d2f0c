"""Lookahead task affinity (TAG: Fifty et al., NeurIPS 2021): does a step for task i help task j?

At a training step t, with θ = (θ_s shared, θ_h heads) and the step's batch:

    θ_s^{t+1|i} = the shared parameters after the optimizer's own update on task i's gradient alone
    Z_{i→j}     = 1 − L_j(θ_s^{t+1|i}, θ_h) / L_j(θ^t)                  (T, T): row i acts, column j receives

Z_{i→j} > 0: a step for task i alone lowers task j's loss on this batch (i helps j);
Z_{i→j} < 0: it raises it. The heads stay where they are: only what the tasks
share can carry help from one task to another. Averaged over training, Z is
TAG's inter-task affinity (tinymtt.mtl.grouping turns it into groups).

**First order.** With plain SGD, θ_s^{t+1|i} = θ_s − η g_i (g_i = ∇_{θ_s} L_i),
and a first-order Taylor step of L_j around θ_s gives

    L_j(θ_s − η g_i) ≈ L_j(θ_s) − η g_j·g_i      so      Z_{i→j} ≈ η g_i·g_j / L_j.

So for small steps the lookahead affinity is the gradient dot product (the
cosine's numerator) divided by the receiving task's loss, and times the step
size: symmetric up to that 1/L_j, and Z_{i→i} = η‖g_i‖²/L_i > 0. The error is
O(η²) (the curvature term ½η² g_iᵀ H_j g_i). **Under Adam** the update is
Δ_i = lr·m̂_i/(√v̂_i + ε) (+ lr·λ·θ for AdamW), with m̂_i, v̂_i the moments the
step would reach from the optimizer's state and g_i, and Z_{i→j} ≈ g_j·Δ_i/L_j:
the dot product with a *preconditioned* step. That is no longer symmetric
(each coordinate is divided by its own √v̂), its size no longer scales with
‖g_i‖ (Adam's steps are about lr per coordinate whatever the gradient's
scale), and the momentum β1·m, which every lookahead shares, adds a common
part to every row. Differences between rows still come from g_i alone.

**Cost and side effects.** One measurement takes T backward passes (the task
gradients, as ``task_gradients``) and T + 1 forward passes in eval mode (no
dropout): the losses at θ^t, then at each lookahead. Everything it touches is
put back -- the parameters, the gradients, the layers' caches -- and the
optimizer's state is never written, so the training step that follows is
bit for bit the one it would have been.
"""

from __future__ import annotations

import numpy

from .. import backend
from .gradients import parameter_slices, shared_parameter_names, task_gradients


def _eval_losses(model, batch) -> numpy.ndarray:
    """(T,) host float64: each task's loss on ``batch`` with dropout off."""
    with model.evaluating():
        result = model.loss(batch)
    return numpy.array([backend.to_float(loss) for loss in result.losses.values()])


def lookahead_affinity(model, batch, update, counted=None, shared_names=None) -> numpy.ndarray:
    """Z (T, T) host float64, Z[i, j] = Z_{i→j} on ``batch`` (module docstring).

    Call after the step's ``model.loss(batch)`` (and its backward, if any): the
    task gradients come from that forward pass, as the training step's do.
    update: ``{name: gradient} -> {name: new value}`` for the shared parameters,
        the optimizer's step without its side effects (``optimizer.lookahead``).
    counted: which tasks had a target (``result.counted``); a row or column of a
        task not counted, or of a task whose loss is 0, is NaN (no affinity measured).
    """
    shared_names = shared_parameter_names(model) if shared_names is None else list(shared_names)
    params, grads = model.parameters(), model.gradients()
    num_tasks = model.config.num_tasks
    counted = [True] * num_tasks if counted is None else list(counted.values() if isinstance(counted, dict) else counted)
    saved_grads = {name: grad.copy() for name, grad in grads.items()}
    affinity = numpy.full((num_tasks, num_tasks), numpy.nan)
    with model.restoring_state():   # the step's caches (and dropout counters) come back afterwards
        try:
            task_grads = task_gradients(model, shared_names, counted)      # (T, P), from the step's forward pass
        finally:
            for name, grad in grads.items():
                grad[...] = saved_grads[name]
        before = _eval_losses(model, batch)                                # L_j(θ^t)
        receives = numpy.array(counted) & (before > 0)
        slices = parameter_slices(model, shared_names)
        for i in numpy.flatnonzero(counted):
            task_grad = {name: task_grads[i, part].reshape(params[name].shape) for name, part in slices.items()}
            originals = {name: params[name].copy() for name in shared_names}
            try:
                for name, value in update(task_grad).items():
                    params[name][...] = value                              # θ_s^{t+1|i}; the heads stay
                after = _eval_losses(model, batch)                         # L_j(θ_s^{t+1|i}, θ_h)
            finally:
                for name in shared_names:
                    params[name][...] = originals[name]
            with numpy.errstate(divide="ignore", invalid="ignore"):
                affinity[i] = numpy.where(receives, 1.0 - after / before, numpy.nan)
    return affinity


def first_order_affinity(task_grads, losses, step_size) -> numpy.ndarray:
    """Z_{i→j} ≈ η g_i·g_j / L_j (plain SGD, module docstring): (T, T) host float64.

    task_grads: G (T, P), row i = g_i; losses: (T,) L_j; step_size: η.
    """
    grads = backend.to_numpy(task_grads).astype(numpy.float64)
    losses = numpy.asarray(backend.to_numpy(losses), dtype=numpy.float64)
    return step_size * (grads @ grads.T) / losses[None, :]


def jsonable_affinity(affinity) -> list:
    """Nested lists of floats, None where NaN (JSON has no NaN)."""
    return [[None if not numpy.isfinite(v) else float(v) for v in row] for row in numpy.asarray(affinity)]


def mean_affinity(records) -> numpy.ndarray:
    """The average of many (T, T) affinity matrices (nested lists, None = not measured) over training, NaN-aware."""
    stack = numpy.array([[[numpy.nan if v is None else v for v in row] for row in matrix] for matrix in records],
                        dtype=numpy.float64)
    with numpy.errstate(invalid="ignore"):
        counts = numpy.sum(~numpy.isnan(stack), axis=0)
        totals = numpy.nansum(stack, axis=0)
        return numpy.where(counts > 0, totals / numpy.maximum(counts, 1), numpy.nan)
