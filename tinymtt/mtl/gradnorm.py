"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018): weights that balance the gradient norms.

Tasks should train at similar rates: it compares, on the last shared layer W,
each task's weighted gradient norm with a target set by how far the task has come:

    G_i = ‖∇_W w_i L_i‖ = w_i n_i,  n_i = ‖∇_W L_i‖      Ḡ = mean_i G_i
    L̃_i = L_i(t)/L_i(0),  r_i = L̃_i / mean_j L̃_j          (r_i > 1: task i lags)
    target_i = Ḡ · r_i^α                                  (α: how strongly to pull)
    L_grad = Σ_i |G_i − target_i|

The paper treats target_i as a constant (no gradient through Ḡ), so by hand

    ∂L_grad/∂w_i = sign(G_i − target_i) · n_i

A task whose gradient is too large for its progress has its weight lowered,
and one too small raised.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from ..backend import array_module, to_numpy
from ..validation import check_number, scalar_upstream
from .base import Strategy, check_task_vectors

MIN_WEIGHT = 1e-3        # the weights are clamped here before renormalising: they stay positive


# -- the rule ----------------------------------------------------------------------
class GradNormCache(NamedTuple):
    norms: object         # (T,) n_i = ‖∇_W L_i‖
    signs: object         # (T,) sign(G_i − target_i)


def gradnorm_targets(weights, norms, loss_ratios, alpha):
    """target_i = Ḡ · r_i^α (T,), with G_i = w_i n_i, Ḡ = mean G, r_i = L̃_i / mean L̃.

    weights: (T,) w_i;  norms: (T,) n_i = ‖∇_W L_i‖;  loss_ratios: (T,) L̃_i = L_i(t)/L_i(0) > 0.
    Computed once per step and then held constant (the paper's choice).
    """
    check_task_vectors(weights=weights, norms=norms, loss_ratios=loss_ratios)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
        raise ValueError(f"alpha must be a number >= 0 (the restoring force; 0 equalises the gradient "
                         f"norms), got {alpha!r}")
    mean_norm = (weights * norms).mean()                                 # Ḡ
    return mean_norm * (loss_ratios / loss_ratios.mean()) ** alpha


def gradnorm_forward(weights, norms, targets):
    """L_grad = Σ_i |w_i n_i − target_i| (0-d), the targets held constant. Returns (L_grad, cache)."""
    xp = check_task_vectors(weights=weights, norms=norms, targets=targets)
    gaps = weights * norms - targets                                     # G_i − target_i
    return xp.asarray(xp.abs(gaps).sum()), GradNormCache(norms, xp.sign(gaps))


def gradnorm_backward(dout, cache: GradNormCache):
    """dweights (T,) = dout · sign(G_i − target_i) · n_i  (∂|x|/∂x = sign x; ∂G_i/∂w_i = n_i)."""
    xp = array_module(cache.norms)
    return scalar_upstream(dout, cache.norms.dtype, xp) * cache.signs * cache.norms


# -- the strategy --------------------------------------------------------------------
class GradNorm(Strategy):
    """GradNorm: weights moved so each task's gradient norm on the last shared layer fits its progress.

    The rule and ∂L_grad/∂w_i: above. Per step: the
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

    def __init__(self, num_tasks, *, kinds=None, alpha=1.5, lr=0.025, layer=None):
        super().__init__(num_tasks, kinds=kinds)
        self.alpha = check_number(alpha, "alpha")
        self.lr = check_number(lr, "lr", low_open=True)
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
        losses, counted = self.vectors(losses, counted)
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
