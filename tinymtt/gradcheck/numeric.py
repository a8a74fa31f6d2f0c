"""Numerical gradients and the relative error: the two measurements every check is made of.

``numerical_gradient(f, x)`` -- central differences, one element at a time:

    df/dx_i ≈ (f(x + h e_i) - f(x - h e_i)) / 2h

Two errors pull against each other: truncation ``h²·|f'''|/6`` grows with h,
rounding ``eps·C/h`` shrinks with it (C: the size of the terms summed inside
f, often well above |f|). In float64 the default h = 1e-5 keeps both near
1e-10 for the small inputs checked here; h = 1e-6 leaves ~1e-8 rounding
noise, relative, on a gradient's smaller elements -- too close to the 1e-7
pass mark.

Relative error, element-wise, reported as the max over elements::

    rel_error(a, b) = max_i |a_i - b_i| / max(|a_i| + |b_i|, floor)

The floor: an element far smaller than the gradient's largest one cannot be
resolved *relative to itself* by finite differences (its rounding noise is set
by the scale of f, not by the element), so elements below 1e-3 of the largest
magnitude are judged against that level instead. A wrong element still shows
up: an error of 1e-4·scale reports as 0.1.

How to read the number (float64): below 1e-7 the gradient is right; above 1e-2
it is almost surely wrong; in between, look closer -- float32 inputs, a kink
(ReLU at 0, a mask boundary) within h of an input, or a small bug.
"""

from __future__ import annotations

import numpy

from ..backend import array_module, to_numpy

TOLERANCE = 1e-7          # an op passes at or below this (float64)
MODEL_TOLERANCE = 1e-6    # a whole model: many ops chained, rounding adds up
STEP = 1e-5              # the finite-difference step h (see the module docstring)
SURELY_WRONG = 1e-2
FLOOR_FRACTION = 1e-3

THRESHOLDS = ("rel. error <= 1e-7: right (float64); > 1e-2: almost surely wrong; "
              "in between: look closer (float32? an input within h of a kink? a small bug?)")


def rel_error(a, b, floor=None) -> float:
    """Max element-wise relative error between two arrays (host or device).

    A NaN, or an infinity where the other array has something else, counts as
    ``inf``: a gradient with NaN in it is never "close". Infinities equal in
    both arrays count as agreement.
    """
    a = numpy.asarray(to_numpy(a), dtype=numpy.float64)
    b = numpy.asarray(to_numpy(b), dtype=numpy.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error needs arrays of one shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    finite = numpy.isfinite(a) & numpy.isfinite(b)
    if not finite.all():
        # max() over Python floats drops a NaN silently, so never let one through
        if not numpy.array_equal(a[~finite], b[~finite]):  # NaN != NaN, so NaN lands here
            return float("inf")
        a, b = a[finite], b[finite]
        if a.size == 0:
            return 0.0
    total = numpy.abs(a) + numpy.abs(b)
    if floor is None:
        floor = max(FLOOR_FRACTION * float(total.max()), 1e-300)
    return float((numpy.abs(a - b) / numpy.maximum(total, floor)).max())


def require_float64(x, what: str):
    """Finite differences need float64: in float32 the step h is lost in rounding."""
    dtype = getattr(x, "dtype", None)
    if dtype != numpy.float64:
        received = f"{dtype} array of shape {tuple(x.shape)}" if dtype is not None else type(x).__name__
        raise TypeError(f"{what} must be a float64 array for a gradient check (in float32 the step h "
                        f"and the rounding noise ~1e-7·|f|/h swamp the gradient; cast with "
                        f".astype('float64')), got {received}")


def scalar_value(value) -> float:
    host = numpy.asarray(to_numpy(value))
    if host.size != 1:
        raise ValueError(f"f must return a scalar (the loss), got an array of shape {host.shape}")
    return float(host.reshape(()))


def numerical_gradient(f, x, h=STEP):
    """Central-difference gradient of the scalar ``f(x)`` with respect to ``x``.

    ``x`` is perturbed in place one element at a time and restored, so ``f``
    may read ``x`` through a closure as well. ``x`` must be float64 (a
    TypeError otherwise): in float32 the rounding noise (~1e-7·|f|/h) swamps
    the answer (and x + h is itself rounded: at |x| >= 256, back to x).
    """
    require_float64(x, "x")
    xp = array_module(x)
    grad = xp.zeros(x.shape, dtype=numpy.float64)
    for index in numpy.ndindex(*x.shape):
        original = x[index].copy() if hasattr(x[index], "copy") else x[index]
        try:
            x[index] = original + h
            plus = scalar_value(f(x))
            x[index] = original - h
            minus = scalar_value(f(x))
        finally:
            x[index] = original
        grad[index] = (plus - minus) / (2 * h)
    return grad


def numerical_gradient_array(f, x, dout, h=STEP):
    """Numerical gradient of ``sum(f(x) · dout)``: the input gradient that a
    backward pass receiving upstream gradient ``dout`` should return."""
    xp = array_module(x)
    return numerical_gradient(lambda x_: xp.sum(f(x_) * dout), x, h)
