"""The loss-weighting rules, as pure functions: uncertainty weighting, DWA, GradNorm.

Each sets the weights w_i of L = Σ_i w_i L_i; the strategy objects
(tinymtt.mtl.strategies) keep their state and call these. Arrays are (T,),
one entry per task; the array module and dtype come from the inputs.

Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018). Each task's
likelihood gets a learned noise σ_i; with s_i = log σ_i² (unconstrained, and
σ_i² = exp(s_i) > 0 always) the negative log-likelihood of all tasks is

    L = Σ_i c_i exp(−s_i) L_i + s_i/2
    c_i = ½ for regression:      −log N(y; f, σ²) = ‖y − f‖²/(2σ²) + log σ + const
    c_i = 1 for classification:  softmax(f/σ²) gives ≈ CE/σ² + log σ
    (log σ = s/2). By hand:
    ∂L/∂L_i = c_i exp(−s_i)               -- the task weight w_i, positive
    ∂L/∂s_i = −c_i exp(−s_i) L_i + ½      -- zero at exp(−s_i) = 1/(2 c_i L_i), i.e. w_i = 1/(2 L_i)
So a task whose loss is large gets a small weight, and the s_i/2 term stops
σ_i from growing without bound (which would switch every task off).

Dynamic weight average (Liu, Johns & Davison, CVPR 2019). A task whose loss
fell slowly over the last epochs gets more weight:

    r_i = L_i(t−1) / L_i(t−2)                   (mean losses of the last two epochs)
    w_i = T exp(r_i/τ) / Σ_j exp(r_j/τ)         (a softmax scaled to sum to T; τ the temperature)

GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018). Tasks should
train at similar rates: it compares, on the last shared layer W, each task's
weighted gradient norm with a target set by how far the task has come:

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

from ..backend import array_module
from ..ops.losses import _scalar_upstream
from ..validation import ShapeError, check_array, check_same_module, describe


def _check_vectors(**arrays):
    """Every argument a 1-d float array, all of one length and on one device."""
    for name, value in arrays.items():
        check_array(value, name, ndim=1, kind="float")
    check_same_module(**arrays)
    shapes = {value.shape for value in arrays.values()}
    if len(shapes) > 1:
        listing = ", ".join(f"{name} is a {describe(value)}" for name, value in arrays.items())
        raise ShapeError(f"these must all have shape (T,), one entry per task: {listing}")


# -- uncertainty weighting ---------------------------------------------------------
class UncertaintyCache(NamedTuple):
    losses: object        # (T,) L_i
    scales: object        # (T,) c_i
    precision: object     # (T,) exp(−s_i)


def uncertainty_forward(losses, log_variances, scales):
    """L = Σ_i c_i exp(−s_i) L_i + s_i/2 (module docstring).

    losses: (T,) L_i;  log_variances: (T,) s_i = log σ_i²;  scales: (T,) c_i
    (½ for regression, 1 for classification). Returns (L 0-d, cache).
    """
    _check_vectors(losses=losses, log_variances=log_variances, scales=scales)
    xp = array_module(losses)
    precision = xp.exp(-log_variances)                                   # 1/σ² = exp(−s)
    total = xp.asarray((scales * precision * losses + 0.5 * log_variances).sum())
    return total, UncertaintyCache(losses, scales, precision)


def uncertainty_backward(dout, cache: UncertaintyCache):
    """(dlosses, dlog_variances): dout·c_i exp(−s_i) and dout·(½ − c_i exp(−s_i) L_i)."""
    xp = array_module(cache.losses)
    dout = _scalar_upstream(dout, cache.losses.dtype, xp)
    weights = cache.scales * cache.precision                             # w_i = c_i exp(−s_i)
    return dout * weights, dout * (0.5 - weights * cache.losses)


# -- dynamic weight average ----------------------------------------------------------
def dwa_weights(previous, before_previous, temperature=2.0):
    """w (T,) = T·softmax(r/τ), r_i = previous_i / before_previous_i (module docstring).

    previous, before_previous: (T,) the mean losses of the last and the one-before-last
    epoch. A task whose before_previous is 0 gets r_i = 1 (no trend to read).
    """
    _check_vectors(previous=previous, before_previous=before_previous)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    xp = array_module(previous)
    ratios = previous / xp.where(before_previous > 0, before_previous, 1)
    ratios = xp.where(before_previous > 0, ratios, 1)
    logits = ratios / temperature
    scores = xp.exp(logits - logits.max())                               # softmax, shifted: no overflow
    return previous.shape[0] * scores / scores.sum()


# -- GradNorm ----------------------------------------------------------------------------
class GradNormCache(NamedTuple):
    norms: object         # (T,) n_i = ‖∇_W L_i‖
    signs: object         # (T,) sign(G_i − target_i)


def gradnorm_targets(weights, norms, loss_ratios, alpha):
    """target_i = Ḡ · r_i^α (T,), with G_i = w_i n_i, Ḡ = mean G, r_i = L̃_i / mean L̃.

    weights: (T,) w_i;  norms: (T,) n_i = ‖∇_W L_i‖;  loss_ratios: (T,) L̃_i = L_i(t)/L_i(0) > 0.
    Computed once per step and then held constant (the paper's choice).
    """
    _check_vectors(weights=weights, norms=norms, loss_ratios=loss_ratios)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
        raise ValueError(f"alpha must be a number >= 0 (the restoring force; 0 equalises the gradient "
                         f"norms), got {alpha!r}")
    mean_norm = (weights * norms).mean()                                 # Ḡ
    return mean_norm * (loss_ratios / loss_ratios.mean()) ** alpha


def gradnorm_forward(weights, norms, targets):
    """L_grad = Σ_i |w_i n_i − target_i| (0-d), the targets held constant. Returns (L_grad, cache)."""
    _check_vectors(weights=weights, norms=norms, targets=targets)
    xp = array_module(weights)
    gaps = weights * norms - targets                                     # G_i − target_i
    return xp.asarray(xp.abs(gaps).sum()), GradNormCache(norms, xp.sign(gaps))


def gradnorm_backward(dout, cache: GradNormCache):
    """dweights (T,) = dout · sign(G_i − target_i) · n_i  (∂|x|/∂x = sign x; ∂G_i/∂w_i = n_i)."""
    xp = array_module(cache.norms)
    return _scalar_upstream(dout, cache.norms.dtype, xp) * cache.signs * cache.norms
