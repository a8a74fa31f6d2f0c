"""Layer normalization over the last axis: out = γ ⊙ (x − μ)/σ + β."""

from __future__ import annotations

from typing import NamedTuple

from ..backend import array_module
from ..validation import check_array, check_same_module, check_shape


class LayerNormCache(NamedTuple):
    x_hat: object     # (..., D) the normalized input (x − μ)/σ
    gamma: object     # (D,) kept for dx̂ = dout·γ
    inv_std: object   # (..., 1) 1/σ per row


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Normalize every row (last axis) to mean 0 and variance 1, then scale and shift.

    x: (..., D) -- e.g. (B, S, D)
    gamma, beta: (D,) the learned scale and shift
    eps: > 0, added to the variance; it also keeps a constant row finite
        (σ = √eps, x̂ = 0, out = β) instead of 0/0
    returns out: (..., D), cache

    μ = mean(x), var = mean((x − μ)²) (biased, like PyTorch), σ = √(var + eps),
    x̂ = (x − μ)/σ, out = γ ⊙ x̂ + β.
    """
    check_array(x, "x", min_ndim=1, kind="float")
    check_array(gamma, "gamma", ndim=1, kind="float")
    check_array(beta, "beta", ndim=1, kind="float")
    check_same_module(x=x, gamma=gamma, beta=beta)
    width = x.shape[-1]
    check_shape(gamma, "gamma", (width,), "(D,) with D = x's last axis")
    check_shape(beta, "beta", (width,), "(D,) with D = x's last axis")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"eps must be a number > 0 (it keeps a constant row finite), got {eps!r}")
    xp = array_module(x)
    centered = x - x.mean(axis=-1, keepdims=True)
    # Σ (x − μ)² per row as an einsum: no squared copy of x
    variance = xp.einsum("...i,...i->...", centered, centered)[..., None] / width
    inv_std = 1.0 / xp.sqrt(variance + eps)   # Python floats keep x's dtype (no float64 upcast)
    x_hat = centered
    x_hat *= inv_std                          # centered is fresh: normalize it in place
    out = x_hat * gamma
    out += beta
    return out, LayerNormCache(x_hat, gamma, inv_std)


def layernorm_backward(dout, cache: LayerNormCache):
    """Gradients of out = γ ⊙ x̂ + β, x̂ = (x − μ)/σ, per row of width D.

    Step by step, with g = dout:
      1. out = γ x̂ + β:   dβ = Σ_rows g,   dγ = Σ_rows g ⊙ x̂,   dx̂ = g ⊙ γ
         (every row uses the same γ, β: their gradients sum over all leading axes)
      2. μ = mean(x):  ∂μ/∂x_j = 1/D
         var = mean((x − μ)²):  ∂var/∂x_j = 2(x_j − μ)/D  (the μ term drops: Σ(x − μ) = 0)
         σ = √(var + eps):  ∂σ/∂x_j = (x_j − μ)/(Dσ) = x̂_j/D
      3. x̂_i = (x_i − μ)/σ:
         ∂x̂_i/∂x_j = (δ_ij − 1/D)/σ − (x_i − μ)/σ² · x̂_j/D = (1/σ)(δ_ij − 1/D − x̂_i x̂_j/D)
      4. dx_j = Σ_i dx̂_i ∂x̂_i/∂x_j:
         dx = (1/σ)(dx̂ − mean(dx̂) − x̂ ⊙ mean(dx̂ ⊙ x̂))
    returns (dx (..., D), dgamma (D,), dbeta (D,))
    """
    x_hat, gamma, inv_std = cache.x_hat, cache.gamma, cache.inv_std
    xp = array_module(x_hat)
    check_array(dout, "dout", kind="float")
    check_shape(dout, "dout", x_hat.shape, "x's shape")
    width = x_hat.shape[-1]
    rows_dout = dout.reshape(-1, width)
    rows_x_hat = x_hat.reshape(-1, width)
    dbeta = rows_dout.sum(axis=0)
    product = rows_dout * rows_x_hat                          # g ⊙ x̂, (N, D)
    dgamma = product.sum(axis=0)
    # The two row means of step 4, with dx̂ = g ⊙ γ, as dot products with γ (einsum
    # makes no (N, D) product array):  mean(dx̂) = (g·γ)/D,  mean(dx̂ ⊙ x̂) = ((g ⊙ x̂)·γ)/D
    mean_dx_hat = xp.einsum("nd,d->n", rows_dout, gamma)[:, None] / width
    mean_dx_hat_x_hat = xp.einsum("nd,d->n", product, gamma)[:, None] / width
    dx = rows_dout * gamma                                    # dx̂, a new array: dout is not written
    dx -= mean_dx_hat
    dx -= xp.multiply(rows_x_hat, mean_dx_hat_x_hat, out=product)   # product is no longer needed
    dx *= inv_std.reshape(-1, 1)
    return dx.reshape(x_hat.shape), dgamma, dbeta
