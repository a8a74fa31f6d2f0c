"""Layer normalization over the last axis: out = γ ⊙ (x − μ)/σ + β."""

from __future__ import annotations

from typing import NamedTuple

from ..backend import array_module, blockwise
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
    rows = x.reshape(-1, width)
    x_hat, out = xp.empty_like(rows), xp.empty_like(rows)
    inv_std = xp.empty((rows.shape[0], 1), dtype=x.dtype)
    # Every row is normalized on its own: the work runs in blocks of rows, on every core.
    blockwise(_layernorm_forward_kernel, rows, x_hat, inv_std, out, whole=(gamma, beta, eps))
    lead = x.shape[:-1]
    return out.reshape(x.shape), LayerNormCache(x_hat.reshape(x.shape), gamma, inv_std.reshape(lead + (1,)))


def _layernorm_forward_kernel(x, x_hat, inv_std, out, gamma, beta, eps):
    """The forward on a block of rows (N, D); writes x̂, 1/σ and the output."""
    xp = array_module(x)
    xp.subtract(x, x.mean(axis=-1, keepdims=True), out=x_hat)   # centered: x − μ
    # Σ (x − μ)² per row as an einsum: no squared copy of x
    variance = xp.einsum("...i,...i->...", x_hat, x_hat)[..., None] / x.shape[-1]
    xp.divide(1.0, xp.sqrt(variance + eps), out=inv_std)   # Python floats keep x's dtype (no float64 upcast)
    x_hat *= inv_std                                        # normalize in place
    xp.multiply(x_hat, gamma, out=out)
    out += beta


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
    product, dx = xp.empty_like(rows_x_hat), xp.empty_like(rows_x_hat)
    blockwise(_layernorm_backward_kernel, rows_dout, rows_x_hat, inv_std.reshape(-1, 1), product, dx,
              whole=(gamma,))
    # The sums over rows stay outside the blocks (each row's share is in product and dout).
    dbeta = rows_dout.sum(axis=0)
    dgamma = product.sum(axis=0)
    return dx.reshape(x_hat.shape), dgamma, dbeta


def _layernorm_backward_kernel(dout, x_hat, inv_std, product, dx, gamma):
    """Step 4 on a block of rows (N, D); writes g ⊙ x̂ (for dγ) and dx."""
    xp = array_module(dout)
    width = x_hat.shape[-1]
    xp.multiply(dout, x_hat, out=product)                     # g ⊙ x̂
    # The two row means of step 4, with dx̂ = g ⊙ γ, as dot products with γ (einsum
    # makes no (N, D) product array):  mean(dx̂) = (g·γ)/D,  mean(dx̂ ⊙ x̂) = ((g ⊙ x̂)·γ)/D
    mean_dx_hat = xp.einsum("nd,d->n", dout, gamma)[:, None] / width
    mean_dx_hat_x_hat = xp.einsum("nd,d->n", product, gamma)[:, None] / width
    xp.multiply(dout, gamma, out=dx)                          # dx̂
    dx -= mean_dx_hat
    dx -= x_hat * mean_dx_hat_x_hat
    dx *= inv_std
