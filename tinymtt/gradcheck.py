"""Gradient checking: is a hand-written backward pass right, and if not, where?

Three tools, from one element to a whole model:

* ``numerical_gradient(f, x)`` -- central differences, one element at a time:
  ``df/dx_i ≈ (f(x + h e_i) - f(x - h e_i)) / 2h``. Two errors pull against each
  other: truncation ``h²·|f'''|/6`` grows with h, rounding ``eps·C/h`` shrinks
  with it (C: the size of the terms summed inside f, often well above |f|).
  In float64 the default h = 1e-5 keeps both near 1e-10 for the small inputs
  checked here; h = 1e-6 leaves ~1e-8 rounding noise, relative, on a
  gradient's smaller elements -- too close to the 1e-7 pass mark.
* ``check_op(forward, backward, inputs)`` -- checks every input's gradient of an
  op through the scalar ``sum(out · g)`` with a *random* upstream gradient g
  (never all ones: the rows of a softmax sum to 1, so with g = 1 a wrong
  softmax backward still "passes"). ``check_backward`` runs the same check and
  prints a verdict a student can act on (``report`` explains any result).
* ``directional_check(f, params, grads)`` and ``coordinate_check`` -- for whole
  models: compare the directional derivative along random directions (two
  forward passes each) with ``Σ <grad, u>``, plus a few sampled coordinates.

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

import math
from typing import NamedTuple

import numpy

from .backend import array_module, to_numpy

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


def _require_float64(x, what: str):
    """Finite differences need float64: in float32 the step h is lost in rounding."""
    dtype = getattr(x, "dtype", None)
    if dtype != numpy.float64:
        received = f"{dtype} array of shape {tuple(x.shape)}" if dtype is not None else type(x).__name__
        raise TypeError(f"{what} must be a float64 array for a gradient check (in float32 the step h "
                        f"and the rounding noise ~1e-7·|f|/h swamp the gradient; cast with "
                        f".astype('float64')), got {received}")


def _scalar(value) -> float:
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
    _require_float64(x, "x")
    xp = array_module(x)
    grad = xp.zeros(x.shape, dtype=numpy.float64)
    for index in numpy.ndindex(*x.shape):
        original = x[index].copy() if hasattr(x[index], "copy") else x[index]
        try:
            x[index] = original + h
            plus = _scalar(f(x))
            x[index] = original - h
            minus = _scalar(f(x))
        finally:
            x[index] = original
        grad[index] = (plus - minus) / (2 * h)
    return grad


def numerical_gradient_array(f, x, dout, h=STEP):
    """Numerical gradient of ``sum(f(x) · dout)``: the input gradient that a
    backward pass receiving upstream gradient ``dout`` should return."""
    xp = array_module(x)
    return numerical_gradient(lambda x_: xp.sum(f(x_) * dout), x, h)


class InputCheck(NamedTuple):
    """The verdict on one input's gradient."""
    name: str
    error: float            # rel_error, or inf where the gradient is missing/misshaped
    analytic: object        # what backward returned (host array, or None)
    numeric: numpy.ndarray  # the finite-difference gradient (host)
    hint: str               # why it is wrong, where that can be told; "" if right


class CheckResult:
    """What ``check_op`` found: one ``InputCheck`` per input, plus misuse."""

    def __init__(self, name, inputs, tolerance, mutated_upstream, mutated_inputs, mutated_by_backward=()):
        self.name = name
        self.inputs = inputs                  # list of InputCheck
        self.tolerance = tolerance
        self.mutated_upstream = mutated_upstream
        self.mutated_inputs = mutated_inputs  # names of inputs forward changed in place
        self.mutated_by_backward = list(mutated_by_backward)  # ... and backward (through the cache)

    @property
    def errors(self) -> dict:
        return {c.name: c.error for c in self.inputs}

    @property
    def worst(self) -> float:
        errors = [c.error for c in self.inputs]
        if any(e != e for e in errors):  # NaN: max() would drop it silently
            return math.inf
        return max(errors, default=0.0)

    @property
    def passed(self) -> bool:
        return (self.worst <= self.tolerance and not self.mutated_upstream and not self.mutated_inputs
                and not self.mutated_by_backward)

    def __bool__(self):
        return self.passed

    def report(self) -> str:
        """The verdict as text: which gradient is wrong, where, and a hint why."""
        from ._hints import format_report
        return format_report(self)

    def __repr__(self):
        errors = ", ".join(f"d{k}={v:.1e}" for k, v in self.errors.items())
        return f"CheckResult({self.name!r}, passed={self.passed}, {errors})"


def _as_tuple(grads):
    """backward returns one array for one input, a tuple for several."""
    return tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)


def _changed(before: dict, inputs: dict) -> list:
    """Names of the inputs whose values differ from the copies in ``before``; restores them."""
    changed = [n for n in before if not numpy.array_equal(before[n], to_numpy(inputs[n]), equal_nan=True)]
    for n in changed:  # restore, so the numerical gradient sees the real input
        inputs[n][...] = array_module(inputs[n]).asarray(before[n])
    return changed


def _copy(value):
    return value.copy() if hasattr(value, "shape") and hasattr(value, "copy") else value


def check_op(forward, backward, inputs: dict, wrt=None, kwargs=None, *, seed=0, h=STEP,
             tolerance=TOLERANCE, name=None) -> CheckResult:
    """Check ``backward`` against finite differences of ``forward``.

    forward(*inputs.values(), **kwargs) -> (out, cache)
    backward(dout, cache) -> the gradients of the ``wrt`` inputs, in that order
        (a single array when there is one) -- or one gradient per forward
        argument, in the inputs' order (as ``linear_backward`` returns
        (dx, dw, db)), of which the ``wrt`` ones are checked.
    inputs: name -> array, in forward's argument order. The ``wrt`` inputs
        must be float64 (default: every floating-point input).

    Also reported, and failing the check: a backward that writes into its
    upstream gradient, a forward or backward that changes an input in place.
    The inputs are left as they came in.
    """
    kwargs = dict(kwargs or {})
    names = list(inputs)
    if wrt is None:
        wrt = [n for n in names if getattr(inputs[n], "dtype", None) is not None and inputs[n].dtype.kind == "f"]
    wrt = [wrt] if isinstance(wrt, str) else list(wrt)
    for n in wrt:
        if n not in inputs:
            raise KeyError(f"wrt names {n!r}, which is not among the inputs {names}")
        _require_float64(inputs[n], f"input {n!r}")
    before = {n: to_numpy(v).copy() for n, v in inputs.items() if hasattr(v, "shape")}
    out, cache = forward(*inputs.values(), **kwargs)
    mutated_inputs = _changed(before, inputs)
    xp = array_module(out)
    g = xp.asarray(numpy.random.default_rng(seed).standard_normal(numpy.shape(out)), dtype=numpy.float64)
    g_before = g.copy()
    grads = _as_tuple(backward(g, cache))
    mutated_upstream = not bool(xp.all(g == g_before))
    mutated_by_backward = _changed(before, inputs)
    # one gradient per forward argument (linear_backward's (dx, dw, db), db None without a bias),
    # not one per wrt entry: pick the wrt ones by their place among the inputs
    by_input = len(wrt) < len(names) <= len(grads)

    def f(_):
        # copies: a forward that changes its input in place must not drift the point
        y, _cache = forward(*[_copy(v) for v in inputs.values()], **kwargs)
        return xp.sum(y * g_before)

    from ._hints import diagnose
    checks = []
    for position, n in enumerate(wrt):
        numeric = to_numpy(numerical_gradient(f, inputs[n], h))
        if by_input:
            position = names.index(n)
        analytic = grads[position] if position < len(grads) else None
        error, hint = diagnose(n, analytic, numeric, len(grads), len(wrt), before[n])
        checks.append(InputCheck(n, error, None if analytic is None else to_numpy(analytic), numeric, hint))
    return CheckResult(name or getattr(forward, "__name__", "op"), checks, tolerance,
                       mutated_upstream, mutated_inputs, mutated_by_backward)


def check_backward(forward, backward, inputs: dict, wrt=None, kwargs=None, *, seed=0, h=STEP,
                   tolerance=TOLERANCE, name=None, verbose=True) -> CheckResult:
    """``check_op`` for students: prints a short verdict and returns the result.

    The verdict names each gradient, says right or wrong, and for a wrong one
    gives the worst element, its index, your value and the numerical one, and
    a hint where the pattern tells (a constant factor, a transpose, a missing
    sum over the batch, a backward that wrote into its upstream gradient).
    """
    result = check_op(forward, backward, inputs, wrt, kwargs, seed=seed, h=h,
                      tolerance=tolerance, name=name)
    if verbose:
        print(result.report())
    return result


class DirectionalCheck(NamedTuple):
    numeric: float
    analytic: float
    error: float


def _check_model_inputs(params: dict, grads: dict):
    missing = sorted(set(params) - set(grads))
    if missing:
        raise KeyError(f"grads lacks entries for parameters {missing}")
    for key, p in params.items():
        _require_float64(p, f"parameter {key!r}")
        if tuple(numpy.shape(grads[key])) != tuple(p.shape):
            raise ValueError(f"grads[{key!r}] must have the parameter's shape {tuple(p.shape)}, "
                             f"got {tuple(numpy.shape(grads[key]))}")


def directional_check(f, params: dict, grads: dict, num_directions=3, *, h=STEP, seed=0,
                      tolerance=MODEL_TOLERANCE):
    """Check a whole model's gradients along random directions (Chainer style).

    f() -> scalar loss computed from ``params`` (a dict of float64 arrays that
    this function perturbs in place and restores bit for bit). For a random
    direction u (one array per parameter, unit norm overall) the numeric
    directional derivative ``(f(p + h·u) - f(p - h·u)) / 2h`` -- two forward
    passes -- must equal ``Σ_k <grads[k], u_k>``. A wrong gradient anywhere
    shows up in every direction with probability 1.

    Returns (passed, [DirectionalCheck, ...]).
    """
    _check_model_inputs(params, grads)
    rng = numpy.random.default_rng(seed)
    saved = {k: p.copy() for k, p in params.items()}
    results = []
    try:
        for _ in range(num_directions):
            raw = {k: rng.standard_normal(numpy.shape(p)) for k, p in params.items()}
            norm = numpy.sqrt(sum(float((u * u).sum()) for u in raw.values())) or 1.0
            directions = {k: array_module(params[k]).asarray(u / norm, dtype=params[k].dtype)
                          for k, u in raw.items()}
            analytic = sum(_scalar(array_module(grads[k]).sum(grads[k] * u)) for k, u in directions.items())
            for k, u in directions.items():
                params[k][...] = saved[k] + h * u
            plus = _scalar(f())
            for k, u in directions.items():
                params[k][...] = saved[k] - h * u
            minus = _scalar(f())
            numeric = (plus - minus) / (2 * h)
            error = abs(numeric - analytic) / max(abs(numeric) + abs(analytic), 1e-300)
            if error != error:  # NaN loss
                error = math.inf
            results.append(DirectionalCheck(numeric, analytic, error))
    finally:
        for k in params:
            params[k][...] = saved[k]
    return all(r.error <= tolerance for r in results), results


def coordinate_check(f, params: dict, grads: dict, per_param=2, *, h=STEP, seed=0,
                     tolerance=MODEL_TOLERANCE):
    """Central differences at a few sampled coordinates of every parameter.

    Complements ``directional_check``: a directional derivative sums over all
    parameters, so this one names the parameter that is wrong.
    Returns (passed, {name: worst rel. error}).
    """
    _check_model_inputs(params, grads)
    rng = numpy.random.default_rng(seed)
    host_grads = {key: to_numpy(grads[key]) for key in params}
    # The floor comes from the whole model's gradient scale, not the parameter's:
    # some parameters have a true gradient of zero (a key bias shifts every score
    # of a softmax row equally), and there only rounding noise is left to compare.
    scale = max((float(numpy.abs(g).max()) for g in host_grads.values() if g.size), default=0.0)
    worst = {}
    for key, p in params.items():
        grad = host_grads[key]
        errors = []
        for _ in range(min(per_param, p.size)):
            index = tuple(int(rng.integers(s)) for s in p.shape)
            original = p[index].copy()
            try:
                p[index] = original + h
                plus = _scalar(f())
                p[index] = original - h
                minus = _scalar(f())
            finally:
                p[index] = original
            numeric = (plus - minus) / (2 * h)
            analytic = float(grad[index])
            denominator = max(abs(numeric) + abs(analytic), FLOOR_FRACTION * scale, 1e-300)
            error = abs(numeric - analytic) / denominator
            errors.append(math.inf if error != error else error)
        worst[key] = max(errors, default=0.0)
    return all(e <= tolerance for e in worst.values()), worst
