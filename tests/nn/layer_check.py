"""One finite-difference check for any layer: its input gradients and every parameter gradient.

    check_layer(layer, forward, inputs) runs forward(*inputs.values()) -> out,
    draws a random upstream g (never ones), calls layer.backward(g), and compares
    with central differences of f = sum(out · g):
      * each float input in ``inputs`` against what backward returned (in order),
      * each parameter (``layer.parameters()``, perturbed in place) against
        ``layer.gradients()``.
Every comparison is ``tinymtt.gradcheck.rel_error``, judged per array at <= 1e-7.

The numerical gradient is ``numerical_gradient`` at two steps, combined by Richardson
extrapolation into the five-point central difference:
    D(h) = (f(x+h) − f(x−h))/2h = f' + c·h² + O(h⁴),   R = (4·D(h/2) − D(h))/3 = f' + O(h⁴).
Why not one plain D(h): f sums ~100 terms, so it carries a rounding error of ~1e-15,
i.e. ~1e-10 in D at h = 1e-5 -- 1e-7 relative for entries near rel_error's floor
(1e-3 of the largest); a post-LN block measured 1.2e-7 that way, pure noise (torch
agrees with it to 1e-14). With h = 2e-3 the rounding is 200 times smaller and the
O(h⁴) truncation ~1e-12; the block then measures 3e-9. The price: inputs must sit
~1e-2 away from a kink (ReLU at 0), which the ReLU tests assert.

Structurally zero gradients: a key bias shifts every score of a softmax row by the
same amount (q·b_k), so ∂L/∂b_k = 0 exactly, and its finite-difference estimate is
pure rounding noise that no *relative* error can judge. Parameters whose dotted name
ends with one of ``zero_suffixes`` are instead required to be zero, both the analytic
and the numerical gradient, to 1e-9 of the layer's gradient scale.
"""

from __future__ import annotations

import numpy as np

from tinymtt import backend
from tinymtt.gradcheck import TOLERANCE, numerical_gradient, rel_error

ZERO_SUFFIXES = ("wk.bias",)

# name -> worst relative error, filled as checks run; printed with `pytest -s`
WORST = {}


def randomize(layer, seed=0, scale=0.3):
    """Move every parameter off its initial value (LayerNorm γ = 1, β = 0 hide bugs)."""
    rng = np.random.default_rng(seed)
    for name, value in layer.parameters().items():
        host = backend.to_numpy(value)
        value[...] = backend.to_device(host + scale * rng.standard_normal(host.shape), dtype=value.dtype)
    return layer


def check_layer(layer, forward, inputs, *, name, backward=None, seed=0, h=2e-3,
                zero_suffixes=ZERO_SUFFIXES, tolerance=TOLERANCE):
    """Check one layer; returns {gradient name: error} and records the worst in WORST.

    forward(*inputs.values()) -> out (any shape, 0-d for a loss)
    backward(g) -> the gradients of the float inputs, in order (a single array for
        one, a tuple for several, None when there is no float input);
        default ``layer.backward``.
    """
    backward = backward or layer.backward
    xp = backend.get_array_module()
    layer.zero_grad()
    before = {k: backend.to_numpy(v).copy() for k, v in inputs.items()}
    out = forward(*inputs.values())
    for k, v in inputs.items():
        np.testing.assert_array_equal(backend.to_numpy(v), before[k], err_msg=f"forward changed input {k}")
    g = xp.asarray(np.random.default_rng(seed + 1000).standard_normal(np.shape(out)), dtype=out.dtype)
    g_before = g.copy()
    returned = backward(g)
    np.testing.assert_array_equal(backend.to_numpy(g), backend.to_numpy(g_before),
                                  err_msg="backward wrote into its upstream gradient")
    float_inputs = [k for k, v in inputs.items() if v.dtype.kind == "f"]
    if returned is None:
        returned = ()
    elif not isinstance(returned, tuple):
        returned = (returned,)
    assert len(returned) == len(float_inputs), \
        f"backward returned {len(returned)} gradients for float inputs {float_inputs}"
    analytic = {f"d{k}": backend.to_numpy(a).copy() for k, a in zip(float_inputs, returned)}
    grads = layer.gradients()
    params = layer.parameters()
    assert grads.keys() == params.keys()
    analytic.update({k: backend.to_numpy(grads[k]).copy() for k in params})

    def f(_):
        return xp.sum(forward(*inputs.values()) * g_before)

    def extrapolated(x):
        return backend.to_numpy(4 * numerical_gradient(f, x, h / 2) - numerical_gradient(f, x, h)) / 3

    numeric = {f"d{k}": extrapolated(inputs[k]) for k in float_inputs}
    numeric.update({k: extrapolated(p) for k, p in params.items()})

    scale = max(float(np.abs(a).max()) for a in numeric.values() if a.size)
    assert scale > 0, f"{name}: every gradient is zero, the check would prove nothing"
    errors = {}
    for k in numeric:
        assert analytic[k].shape == numeric[k].shape, f"{name}: {k} has shape {analytic[k].shape}, want {numeric[k].shape}"
        assert analytic[k].dtype == np.float64, f"{name}: {k} is {analytic[k].dtype}, want float64"
        if k.endswith(zero_suffixes):
            largest = max(float(np.abs(analytic[k]).max()), float(np.abs(numeric[k]).max()))
            assert largest <= 1e-9 * scale, f"{name}: {k} must be zero (a key bias cancels in the softmax), got {largest}"
            continue
        errors[k] = rel_error(analytic[k], numeric[k])
    worst = max(errors.values())
    WORST[name] = max(WORST.get(name, 0.0), worst)
    print(f"\nFD {name}: worst rel. error {worst:.2e} ({max(errors, key=errors.get)})")
    bad = {k: e for k, e in errors.items() if not e <= tolerance}
    assert not bad, f"{name}: gradients above {tolerance}: " + ", ".join(f"{k}={e:.2e}" for k, e in bad.items())
    return errors
