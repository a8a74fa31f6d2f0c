"""The strategies that need the per-task gradients G (T, P): GradNorm, PCGrad, MGDA, CAGrad.

GradNorm measures each task's gradient norm on one shared layer to move its
loss weights (the rule: weighting.py). PCGrad, MGDA and CAGrad (the rules:
pcgrad.py, mgda.py, cagrad.py) replace the shared-parameter gradient by
d = Σ_i a_i g_i, the coefficients a solved from the Gram matrix of the counted
tasks' gradients (tinymtt.mtl.simplex); a task not counted in the batch has a
zero row, is left out of the solve and gets a_i = 0. ``last_weights`` holds a,
so the history shows how each method weighed the tasks at every logged step.
"""

from __future__ import annotations

import numpy

from ..backend import to_numpy
from ..optim import _integer, _number
from .cagrad import cagrad_coefficients
from .mgda import min_norm_weights
from .pcgrad import pcgrad_matrix
from .simplex import combine_rows, gram_matrix
from .strategies import Strategy
from .weighting import gradnorm_backward, gradnorm_forward, gradnorm_targets

MIN_WEIGHT = 1e-3        # GradNorm's weights are clamped here before renormalising: they stay positive


class GradNorm(Strategy):
    """GradNorm: weights moved so each task's gradient norm on the last shared layer fits its progress.

    The rule and ∂L_grad/∂w_i are in tinymtt.mtl.weighting. Per step: the
    trainer's per-task gradients (rows ∇(w_i L_i)) give G_i on the layer W;
    ``combine`` returns their sum (the gradient of Σ w_i L_i, the paper's network
    update) and keeps the G_i; ``after_step`` takes one gradient step on w
    (learning rate ``lr``), clamps at MIN_WEIGHT (positive) and renormalises
    so Σ w_i = T. L_i(0) is each task's loss at the first step it is counted.

    W, by default: the last shared parameter named ``*.weight`` -- the last
    shared weight matrix before the heads (the FFN's second Linear of the last
    encoder block in conditioned mode, the task attention's output projection
    in joint mode). The final LayerNorm's gain comes after it but is a diagonal
    scale of D numbers: its gradient norm says little about how hard a task
    pulls on the shared features. ``layer`` names another parameter.
    """

    name = "gradnorm"
    needs_task_gradients = True
    options = {"alpha": 1.5, "lr": 0.025, "layer": None}

    def __init__(self, num_tasks, alpha=1.5, lr=0.025, layer=None):
        super().__init__(num_tasks)
        self.alpha = _number(alpha, "alpha")
        self.lr = _number(lr, "lr", low_open=True)
        if layer is not None and not isinstance(layer, str):
            raise TypeError(f"layer must be a parameter name (str) or None, got {layer!r}")
        self.layer, self.columns = layer, None
        self.current = numpy.ones(self.num_tasks)
        self.initial_losses = numpy.zeros(self.num_tasks)
        self.initial_known = numpy.zeros(self.num_tasks, dtype=bool)
        self._norms = None                               # G_i of the last combine, until after_step

    def weights(self):
        return self.current

    def attach(self, layout):
        if self.layer is None:
            matrices = [name for name in layout if name.endswith(".weight")]
            if not matrices:
                raise ValueError(f"gradnorm: no shared parameter named *.weight among {list(layout)}; "
                                 f"name the layer with the option layer=NAME")
            self.layer = matrices[-1]
        if self.layer not in layout:
            raise KeyError(f"gradnorm: layer {self.layer!r} is not a shared parameter; the shared parameters are "
                           f"{list(layout)}")
        self.columns = layout[self.layer]

    def combine(self, task_grads, losses, counted):
        if self.columns is None:
            raise RuntimeError("GradNorm.combine needs to know the layer W: call attach({name: slice}) first "
                               "(the Trainer does)")
        block = task_grads[:, self.columns]
        self._norms = numpy.sqrt(numpy.asarray(to_numpy((block * block).sum(axis=1)), dtype=numpy.float64))
        return task_grads.sum(axis=0)

    def after_step(self, losses, counted):
        losses, counted = self._inputs(losses, counted)
        first = counted & ~self.initial_known
        self.initial_losses[first], self.initial_known[first] = losses[first], True
        norms, self._norms = self._norms, None
        if norms is None or counted.sum() < 2:            # one task alone is always on target
            return
        w = self.current[counted]
        ratios = losses[counted] / numpy.maximum(self.initial_losses[counted], 1e-12)      # L̃_i
        unweighted = norms[counted] / w                                                      # n_i = G_i / w_i
        _, cache = gradnorm_forward(w, unweighted, gradnorm_targets(w, unweighted, ratios, self.alpha))
        updated = self.current.copy()
        updated[counted] = numpy.maximum(w - self.lr * gradnorm_backward(1.0, cache), MIN_WEIGHT)
        self.current = updated * (self.num_tasks / updated.sum())                            # Σ w_i = T

    def state_dict(self):
        return {"weights": self.current.copy(), "initial_losses": self.initial_losses.copy(),
                "initial_known": self.initial_known.copy()}

    def load_state_dict(self, state):
        self.current = numpy.array(state["weights"], dtype=numpy.float64)
        self.initial_losses = numpy.array(state["initial_losses"], dtype=numpy.float64)
        self.initial_known = numpy.array(state["initial_known"], dtype=bool)


class _Combination(Strategy):
    needs_task_gradients = True

    def solve(self, gram):
        """Coefficients (k,) for the k counted tasks, from their Gram matrix (k, k)."""
        raise NotImplementedError

    def combine(self, task_grads, losses, counted):
        _, counted = self._inputs(losses, counted)
        used = numpy.flatnonzero(counted)
        coefficients = numpy.zeros(self.num_tasks)
        if used.size:
            coefficients[used] = self.solve(gram_matrix(task_grads, "task_grads")[numpy.ix_(used, used)])
        self.last_weights = coefficients
        return combine_rows(coefficients, task_grads)


class PCGrad(_Combination):
    """PCGrad; with ``shuffle`` (default) the partner order of step k is drawn from seed (``seed``, k)."""

    name = "pcgrad"
    options = {"seed": 0, "shuffle": True}

    def __init__(self, num_tasks, seed=0, shuffle=True):
        super().__init__(num_tasks)
        self.seed = _integer(seed, "seed")
        if not isinstance(shuffle, (bool, numpy.bool_)):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        self.shuffle, self.calls = bool(shuffle), 0

    def solve(self, gram):
        rng = numpy.random.default_rng([self.seed, self.calls]) if self.shuffle else None
        self.calls += 1
        return pcgrad_matrix(gram, rng).sum(axis=0)

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = _integer(int(state["calls"]), "state['calls']")


class MGDA(_Combination):
    """MGDA: the min-norm point of the gradients' convex hull, not rescaled (mgda.py says why)."""

    name = "mgda"
    options = {"iterations": 100}

    def __init__(self, num_tasks, iterations=100):
        super().__init__(num_tasks)
        self.iterations = _integer(iterations, "iterations", low=1)

    def solve(self, gram):
        return min_norm_weights(gram, self.iterations)


class CAGrad(_Combination):
    """CAGrad with radius ``c`` (0.5 default, as the paper's experiments), the update divided by 1 + c²."""

    name = "cagrad"
    options = {"c": 0.5, "iterations": 100}

    def __init__(self, num_tasks, c=0.5, iterations=100):
        super().__init__(num_tasks)
        self.c = _number(c, "c")
        self.iterations = _integer(iterations, "iterations", low=1)

    def solve(self, gram):
        return cagrad_coefficients(gram, self.c, self.iterations)
