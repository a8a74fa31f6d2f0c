"""Multi-task strategies: one small object per method, one interface the trainer calls.

A training step with a strategy (tinymtt.train.Trainer.train_step):

    losses          = model.loss(batch)                      L_τ per task; counted: which had a target
    w               = strategy.task_weights(losses, counted)   (T,), 0 where a task is not counted
    loss methods:     model.backward(dlosses=w)              the gradient of Σ w_i L_i
    gradient methods: G = task_gradients(model, scales=w)     row i = ∇_shared (w_i L_i), T backward passes
                      d = strategy.combine(G, losses, counted) and it replaces the shared gradient
    optimizer step
    strategy.after_step(losses, counted)                      the strategy updates its own state

Loss methods set the weights (this file): ``fixed`` (constant), ``uncertainty``
(learned log-variances), ``dwa`` (from the losses' recent trend). Gradient
methods (``needs_task_gradients``, gradient_strategies.py) combine the per-task
gradients of the shared parameters: ``pcgrad``, ``mgda``, ``cagrad``;
``gradnorm`` needs them too, to measure each task's gradient norm on the last
shared layer, and then sums them. Heads are task-specific: each always gets
its own task's gradient (times w_i).

``losses`` and ``counted`` are dicts in the model's task order (as
``model.loss`` and ``model.last_counted`` give them) or sequences of T values.
A task not counted in a batch has no loss there: its weight is 0 and it takes
no part in any update of the strategy's state -- never a zero loss.

Strategy parameters (uncertainty's s_i, GradNorm's w_i) are host float64
arrays of T numbers, updated by the strategy itself in ``after_step``;
``state_dict()`` holds them (plain numbers and host arrays) for an exact resume.
"""

from __future__ import annotations

import numpy

from ..backend import to_float
from ..optim import Adam, _integer, _number
from .weighting import dwa_weights, uncertainty_backward, uncertainty_forward


def _vector(values, num_tasks, name, dtype=numpy.float64):
    """A dict (task order) or a sequence of T values -> host (T,) array."""
    if isinstance(values, dict):
        values = list(values.values())
    if not isinstance(values, (list, tuple, numpy.ndarray)) or len(values) != num_tasks:
        raise ValueError(f"{name} must give one value per task ({num_tasks}), got {values!r}")
    return numpy.array([bool(v) if dtype is bool else to_float(v) for v in values], dtype=dtype)


class Strategy:
    """The interface (module docstring). The base class is the plain weighted sum with every weight 1."""

    name = ""
    needs_task_gradients = False
    options = {}                 # option name -> default (make_strategy checks the names)

    def __init__(self, num_tasks):
        self.num_tasks = _integer(num_tasks, "num_tasks", low=1)
        self.last_weights = numpy.ones(self.num_tasks)   # what the last update used (history records it)

    def _inputs(self, losses, counted):
        return _vector(losses, self.num_tasks, "losses"), _vector(counted, self.num_tasks, "counted", bool)

    def weights(self):
        """The current weights (T,), before masking."""
        return numpy.ones(self.num_tasks)

    def task_weights(self, losses, counted):
        """(T,) host float64: the loss weights w_i > 0 of the counted tasks, 0 for the others."""
        _, counted = self._inputs(losses, counted)
        self.last_weights = numpy.where(counted, self.weights(), 0.0)
        return self.last_weights

    def attach(self, layout):
        """Learn where each shared parameter sits in a row of G: {name: slice} (GradNorm uses it)."""

    def combine(self, task_grads, losses, counted):
        """The shared-parameter update (P,) from G (T, P), row i = ∇(w_i L_i): here their sum."""
        return task_grads.sum(axis=0)

    def after_step(self, losses, counted):
        """Update the strategy's own state once the model's optimizer has stepped."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state):
        if state:
            raise KeyError(f"strategy {self.name!r} keeps no state, got keys {sorted(state)}")

    def __repr__(self):
        return f"{type(self).__name__}(num_tasks={self.num_tasks})"


class Fixed(Strategy):
    """L = Σ_i w_i L_i with constant weights (default 1 each)."""

    name = "fixed"
    options = {"weights": None}

    def __init__(self, num_tasks, weights=None):
        super().__init__(num_tasks)
        self.fixed = numpy.ones(self.num_tasks) if weights is None else _vector(weights, self.num_tasks, "weights")
        if not numpy.isfinite(self.fixed).all():
            raise ValueError(f"weights must be finite numbers, got {self.fixed.tolist()}")

    def weights(self):
        return self.fixed


class Uncertainty(Strategy):
    """Kendall et al.'s homoscedastic uncertainty: w_i = c_i exp(−s_i), s_i learned (tinymtt.mtl.weighting).

    kinds: each task's kind ("regression" gives c_i = ½, others 1; None: all 1).
    s starts at ``initial`` and is updated by the strategy's own Adam (learning
    rate ``lr``, no weight decay: a decay would pull every σ_i towards 1) on
    ∂L/∂s_i of the counted tasks, after each model step.
    """

    name = "uncertainty"
    options = {"lr": 0.01, "initial": 0.0}

    def __init__(self, num_tasks, kinds=None, lr=0.01, initial=0.0):
        super().__init__(num_tasks)
        kinds = kinds or ["classification"] * self.num_tasks
        if len(kinds) != self.num_tasks:
            raise ValueError(f"kinds must name one kind per task ({self.num_tasks}), got {kinds!r}")
        self.scales = numpy.array([0.5 if kind == "regression" else 1.0 for kind in kinds])
        initial = _number(initial, "initial", low=-float("inf"))
        self.log_variances = numpy.full(self.num_tasks, initial)
        self.optimizer = Adam({"log_variances": self.log_variances}, lr=_number(lr, "lr", low_open=True))

    def weights(self):
        return self.scales * numpy.exp(-self.log_variances)

    def after_step(self, losses, counted):
        losses, counted = self._inputs(losses, counted)
        _, cache = uncertainty_forward(losses, self.log_variances, self.scales)
        _, dlog_variances = uncertainty_backward(1.0, cache)
        self.optimizer.step({"log_variances": numpy.where(counted, dlog_variances, 0.0)})

    def state_dict(self):
        return {"log_variances": self.log_variances.copy(),
                **{f"optimizer.{key}": value for key, value in self.optimizer.state_dict().items()}}

    def load_state_dict(self, state):
        self.optimizer.load_state_dict({key[len("optimizer."):]: value for key, value in state.items()
                                        if key.startswith("optimizer.")})
        self.log_variances[...] = numpy.asarray(state["log_variances"], dtype=numpy.float64)


class DynamicWeightAverage(Strategy):
    """DWA: w_i = T·softmax(r_i/τ), r_i = L_i(t−1)/L_i(t−2) over "epochs" of ``window`` steps.

    An epoch here is a window of ``window`` consecutive training steps (our data
    is sampled forever, with no epoch boundary to wait for): each task's mean
    loss over a window is its L_i(t). 50 steps: a mean over 50 batches is long
    enough that batch-to-batch noise does not drive the weights (with a window
    of 1 the ratio r_i is mostly noise), short enough that a 2000-step run sees
    40 windows. The first two
    windows use w = 1 (the paper's t = 1, 2); a task with no counted step in
    one of the last two windows gets r_i = 1.
    """

    name = "dwa"
    options = {"window": 50, "temperature": 2.0}

    def __init__(self, num_tasks, window=50, temperature=2.0):
        super().__init__(num_tasks)
        self.window = _integer(window, "window", low=1)
        self.temperature = _number(temperature, "temperature", low_open=True)
        self.sums = numpy.zeros(self.num_tasks)          # this window's loss sums and counted steps
        self.counts = numpy.zeros(self.num_tasks)
        self.steps_in_window = 0
        self.means = numpy.zeros((2, self.num_tasks))    # [L(t−1), L(t−2)]
        self.known = numpy.zeros((2, self.num_tasks), dtype=bool)

    def weights(self):
        both = self.known.all(axis=0)
        return dwa_weights(numpy.where(both, self.means[0], 1.0), numpy.where(both, self.means[1], 1.0),
                           self.temperature)

    def after_step(self, losses, counted):
        losses, counted = self._inputs(losses, counted)
        self.sums += numpy.where(counted, losses, 0.0)
        self.counts += counted
        self.steps_in_window += 1
        if self.steps_in_window == self.window:
            self.means[1], self.known[1] = self.means[0], self.known[0]
            self.means[0] = numpy.where(self.counts > 0, self.sums / numpy.maximum(self.counts, 1), 0.0)
            self.known[0] = self.counts > 0
            self.sums[...], self.counts[...], self.steps_in_window = 0.0, 0.0, 0

    def state_dict(self):
        return {"sums": self.sums.copy(), "counts": self.counts.copy(), "means": self.means.copy(),
                "known": self.known.copy(), "steps_in_window": self.steps_in_window}

    def load_state_dict(self, state):
        for key in ("sums", "counts", "means", "known"):
            getattr(self, key)[...] = numpy.asarray(state[key])
        self.steps_in_window = int(state["steps_in_window"])

