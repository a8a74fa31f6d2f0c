"""What every multi-task strategy shares: the interface the trainer calls, and the gradient combination.

A training step with a strategy (tinymtt.train.Trainer.train_step):

    result          = model.loss(batch)                        L_τ per task; result.counted: which had a target
    w               = strategy.task_weights(losses, counted)   (T,), 0 where a task is not counted
    loss methods:     model.backward(dlosses=w)                the gradient of Σ w_i L_i
    gradient methods: G = task_gradients(model, counted=counted, scales=w)
                                                               row i = ∇_shared (w_i L_i), T backward passes
                      d = strategy.combine(G, losses, counted) and it replaces the shared gradient
    optimizer step
    strategy.after_step(losses, counted)                       the strategy updates its own state

Loss methods only set the weights (``fixed``, ``uncertainty``, ``dwa``,
``rlw``, ``famo``, and ``imtl`` with variant=loss). Gradient methods
(``needs_task_gradients``) see the per-task gradients of the shared
parameters: ``pcgrad``, ``mgda``, ``cagrad``, ``imtl``, ``nashmtl``,
``alignedmtl`` and ``gradvac`` combine them (``GradientCombination`` below);
``dbmtl`` combines moving averages of them; ``gradnorm`` measures each task's
gradient norm on the last shared layer, and then sums them. Heads are
task-specific: each always gets its own task's gradient (times w_i).
A strategy with ``needs_losses_after_step`` (FAMO) also gets the same batch's
losses once the parameters have moved (one more forward pass).

``losses`` and ``counted`` are dicts in the model's task order (as
``model.loss`` gives them) or sequences of T values. A task not counted in a
batch has no loss there: its weight is 0 and it takes no part in any update
of the strategy's state -- never a zero loss.

Strategy parameters (uncertainty's s_i, GradNorm's w_i, IMTL's s_i, FAMO's
logits) are host float64 arrays of T numbers, updated by the strategy itself in ``after_step``;
``state_dict()`` holds them (plain numbers and host arrays) for an exact resume.

Every method is one file of this package, read top to bottom: the derivation
(the module docstring), the pure rule (functions of arrays), the strategy
class. ``registry.py`` lists the classes by name.
"""

from __future__ import annotations

import numpy

from ..backend import array_module, to_float
from ..validation import ShapeError, check_array, check_integer, check_same_module, describe
from .simplex import combine_rows, gram_matrix


def task_vector(values, num_tasks, name, dtype=numpy.float64):
    """A dict (task order) or a sequence of T values -> host (T,) array."""
    if isinstance(values, dict):
        values = list(values.values())
    if not isinstance(values, (list, tuple, numpy.ndarray)) or len(values) != num_tasks:
        raise ValueError(f"{name} must give one value per task ({num_tasks}), got {values!r}")
    return numpy.array([bool(v) if dtype is bool else to_float(v) for v in values], dtype=dtype)


def check_task_vectors(**arrays):
    """Every argument a 1-d float array, all of one length (T, one entry per task) and on one device."""
    for name, value in arrays.items():
        check_array(value, name, ndim=1, kind="float")
    check_same_module(**arrays)
    shapes = {value.shape for value in arrays.values()}
    if len(shapes) > 1:
        listing = ", ".join(f"{name} is a {describe(value)}" for name, value in arrays.items())
        raise ShapeError(f"these must all have shape (T,), one entry per task: {listing}")
    return array_module(*arrays.values())


class Strategy:
    """The interface (module docstring). The base class is the plain weighted sum with every weight 1.

    kinds: each task's kind ("token", "sequence", "regression"), given to every
    strategy (uncertainty weighting uses it); None when unknown.
    """

    name = ""
    needs_task_gradients = False
    needs_losses_after_step = False   # FAMO: the trainer passes the same batch's losses after the step
    options = {}                 # option name -> default (make_strategy checks the names)

    def __init__(self, num_tasks, *, kinds=None):
        self.num_tasks = check_integer(num_tasks, "num_tasks", low=1)
        if kinds is not None and len(kinds) != self.num_tasks:
            raise ValueError(f"kinds must name one kind per task ({self.num_tasks}), got {kinds!r}")
        self.kinds = None if kinds is None else list(kinds)
        self.last_weights = numpy.ones(self.num_tasks)   # what the last update used (history records it)

    def vectors(self, losses, counted):
        """(losses (T,) float64, counted (T,) bool) on the host, from dicts or sequences."""
        return task_vector(losses, self.num_tasks, "losses"), task_vector(counted, self.num_tasks, "counted", bool)

    def weights(self):
        """The current weights (T,), before masking."""
        return numpy.ones(self.num_tasks)

    def task_weights(self, losses, counted):
        """(T,) host float64: the loss weights w_i > 0 of the counted tasks, 0 for the others."""
        _, counted = self.vectors(losses, counted)
        self.last_weights = numpy.where(counted, self.weights(), 0.0)
        return self.last_weights

    def attach(self, layout):
        """Learn where each shared parameter sits in a row of G: {name: slice} (GradNorm uses it)."""

    def combine(self, task_grads, losses, counted):
        """The shared-parameter update (P,) from G (T, P), row i = ∇(w_i L_i): here their sum."""
        return task_grads.sum(axis=0)

    def losses_after_step(self, losses, counted):
        """With ``needs_losses_after_step``: the same batch's losses once the parameters have moved.

        The trainer calls it after the optimizer step and before ``after_step``
        (one more forward pass, no backward pass).
        """

    def after_step(self, losses, counted):
        """Update the strategy's own state once the model's optimizer has stepped."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state):
        if state:
            raise KeyError(f"strategy {self.name!r} keeps no state, got keys {sorted(state)}")

    def __repr__(self):
        return f"{type(self).__name__}(num_tasks={self.num_tasks})"


class GradientCombination(Strategy):
    """PCGrad, MGDA, CAGrad: the shared update d = Σ_i a_i g_i, a solved from the Gram matrix.

    The coefficients come from the counted tasks' gradients only
    (tinymtt.mtl.simplex): a task not counted in the batch has a zero row, is
    left out of the solve and gets a_i = 0. ``last_weights`` holds a, so the
    history shows how each method weighed the tasks at every logged step.
    A subclass writes ``solve``.
    """

    needs_task_gradients = True

    def solve(self, gram, losses):
        """Coefficients (k,) for the k counted tasks, from their Gram matrix (k, k) and their losses (k,)."""
        raise NotImplementedError

    def combine(self, task_grads, losses, counted):
        losses, counted = self.vectors(losses, counted)
        used = numpy.flatnonzero(counted)
        coefficients = numpy.zeros(self.num_tasks)
        if used.size:
            coefficients[used] = self.solve(gram_matrix(task_grads, "task_grads")[numpy.ix_(used, used)],
                                            losses[used])
        self.last_weights = coefficients
        return combine_rows(coefficients, task_grads)
