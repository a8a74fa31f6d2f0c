"""IMTL: impartial multi-task learning (Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, ICLR 2021).

Two parts, usable alone or together (the option ``variant``).

IMTL-L, the loss part. Each task gets a learned scale s_i, and the model and
s minimise

    L = Σ_i (e^{s_i} L_i − s_i)
    ∂L/∂L_i = e^{s_i}                  -- the task weight w_i
    ∂L/∂s_i = e^{s_i} L_i − 1           -- zero at e^{s_i} L_i = 1

so at its equilibrium every scaled loss e^{s_i} L_i equals 1, whatever the
raw scale of L_i: multiplying L_i by c moves the equilibrium s_i by −log c and
leaves the scaled loss, and so the update, as it was. (The −s_i term stops
s_i from falling to −∞, where every task would be switched off.)

IMTL-G, the gradient part. From the task gradients g_i (of the scaled losses)
and their unit vectors u_i = g_i/‖g_i‖, find the d = Σ_i α_i g_i with
Σ_i α_i = 1 whose projection on every u_i is the same:

    d·u_1 = d·u_j  for j = 2..T      (no task favoured, whatever its gradient norm)

With Σ α_i = 1, d = g_1 − Σ_{j≥2} α_j (g_1 − g_j) = g_1 − α D, D's rows g_1 − g_j;
the conditions read d Uᵀ = 0 with U's rows u_1 − u_j. So

    α_{2:T} = g_1 Uᵀ (D Uᵀ)⁻¹,   α_1 = 1 − Σ_{j≥2} α_j

On the Gram matrix K (tinymtt.mtl.simplex), with n_j = √K_jj and M_ij = K_ij/n_j = g_i·u_j:
(g_1 Uᵀ)_j = M_11 − M_1j and (D Uᵀ)_ij = M_11 − M_1j − M_i1 + M_ij, a (T−1)×(T−1)
solve on the host. Multiplying one g_i by c > 0 leaves every u_i and the span
of the g_i as they were, so the conditions define the same line: d keeps its
direction (its length changes, since Σ α_i = 1 is measured in units of the g_i).

As LibMTL's ``IMTL`` (the hybrid: scales on the losses, then IMTL-G on the
gradients of the scaled losses; each head gets ∇(e^{s_i} L_i)). LibMTL trains
s with the model's optimizer; here, as for uncertainty weighting, s has its own
Adam (``lr``), stepped after each model step on the counted tasks' ∂L/∂s_i.
A task whose gradient is 0 has no direction u_i; it gets α_i = 0. When D Uᵀ is
singular (two gradients of one direction) a least-squares solution is taken.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from ..backend import array_module
from ..optim import Adam
from ..validation import check_number, scalar_upstream
from .base import GradientCombination, check_task_vectors
from .simplex import combine_rows, gram_matrix

VARIANTS = ("hybrid", "loss", "gradient")


# -- IMTL-L ----------------------------------------------------------------------------
class ImtlLossCache(NamedTuple):
    losses: object        # (T,) L_i
    weights: object       # (T,) e^{s_i}


def imtl_loss_forward(losses, log_scales):
    """L = Σ_i e^{s_i} L_i − s_i (0-d), from losses (T,) and log_scales s (T,). Returns (L, cache)."""
    xp = check_task_vectors(losses=losses, log_scales=log_scales)
    weights = xp.exp(log_scales)
    return xp.asarray((weights * losses - log_scales).sum()), ImtlLossCache(losses, weights)


def imtl_loss_backward(dout, cache: ImtlLossCache):
    """(dlosses, dlog_scales) = (dout·e^{s_i}, dout·(e^{s_i} L_i − 1))."""
    dout = scalar_upstream(dout, cache.losses.dtype, array_module(cache.losses))
    return dout * cache.weights, dout * (cache.weights * cache.losses - 1.0)


# -- IMTL-G ----------------------------------------------------------------------------
def imtl_gradient_coefficients(gram):
    """α (T,) host float64 with Σ α_i = 1 and equal projections of d = α @ G on every u_i (module docstring)."""
    gram = numpy.asarray(gram, dtype=numpy.float64)
    num_tasks = gram.shape[0]
    norms = numpy.sqrt(numpy.maximum(gram.diagonal(), 0.0))
    alpha = numpy.zeros(num_tasks)
    used = numpy.flatnonzero(norms > 0)                        # a zero gradient has no direction
    if used.size == 0:
        return alpha
    if used.size == 1:
        alpha[used] = 1.0
        return alpha
    projections = gram[numpy.ix_(used, used)] / norms[used]    # M_ij = g_i·u_j
    first = projections[0, 0] - projections[0, 1:]              # (g_1 Uᵀ)_j
    system = first[None, :] - projections[1:, :1] + projections[1:, 1:]      # (D Uᵀ)_ij
    try:
        rest = numpy.linalg.solve(system.T, first)              # α_{2:T} (D Uᵀ) = g_1 Uᵀ
    except numpy.linalg.LinAlgError:
        rest = numpy.linalg.lstsq(system.T, first, rcond=None)[0]
    alpha[used] = numpy.concatenate([[1.0 - rest.sum()], rest])
    return alpha


def imtl_gradient(grads):
    """IMTL-G's d = Σ α_i g_i (P,) from grads (T, P), in their dtype and on their device."""
    return combine_rows(imtl_gradient_coefficients(gram_matrix(grads)), grads)


# -- the strategy --------------------------------------------------------------------
class IMTL(GradientCombination):
    """IMTL: ``variant`` "hybrid" (IMTL-L's scales and IMTL-G, the default), "loss" (IMTL-L alone) or
    "gradient" (IMTL-G alone); s starts at ``initial`` and has its own Adam (``lr``)."""

    name = "imtl"
    options = {"variant": "hybrid", "lr": 0.025, "initial": 0.0}

    def __init__(self, num_tasks, *, kinds=None, variant="hybrid", lr=0.025, initial=0.0):
        super().__init__(num_tasks, kinds=kinds)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self.needs_task_gradients = variant != "loss"            # IMTL-L alone is a plain weighted sum
        self.log_scales = numpy.full(self.num_tasks, check_number(initial, "initial", low=-float("inf")))
        self.optimizer = Adam({"log_scales": self.log_scales}, lr=check_number(lr, "lr", low_open=True))

    def weights(self):
        return numpy.ones(self.num_tasks) if self.variant == "gradient" else numpy.exp(self.log_scales)

    def solve(self, gram, losses=None):
        return imtl_gradient_coefficients(gram)

    def after_step(self, losses, counted):
        if self.variant == "gradient":
            return
        losses, counted = self.vectors(losses, counted)
        _, cache = imtl_loss_forward(losses, self.log_scales)
        _, dlog_scales = imtl_loss_backward(1.0, cache)
        self.optimizer.step({"log_scales": numpy.where(counted, dlog_scales, 0.0)})

    def state_dict(self):
        if self.variant == "gradient":
            return {}
        return {"log_scales": self.log_scales.copy(),
                **{f"optimizer.{key}": value for key, value in self.optimizer.state_dict().items()}}

    def load_state_dict(self, state):
        if self.variant == "gradient":
            return super().load_state_dict(state)
        self.optimizer.load_state_dict({key[len("optimizer."):]: value for key, value in state.items()
                                        if key.startswith("optimizer.")})
        self.log_scales[...] = numpy.asarray(state["log_scales"], dtype=numpy.float64)
