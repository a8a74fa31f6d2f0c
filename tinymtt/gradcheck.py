"""Gradient checking: is a hand-written backward pass right, and if not, where?

Three tools, from one element to a whole model:

* ``numerical_gradient(f, x)`` -- central differences, one element at a time:
  ``df/dx_i ≈ (f(x + h e_i) - f(x - h e_i)) / 2h``. Exact up to O(h²) truncation
  plus rounding of about ``eps·|f|/h``; in float64 with h = 1e-6 that is ~1e-10.
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

from typing import NamedTuple

import numpy

from .backend import array_module, to_numpy

TOLERANCE = 1e-7          # an op passes at or below this (float64)
MODEL_TOLERANCE = 1e-6    # a whole model: many ops chained, rounding adds up
SURELY_WRONG = 1e-2
FLOOR_FRACTION = 1e-3

THRESHOLDS = ("rel. error <= 1e-7: right (float64); > 1e-2: almost surely wrong; "
              "in between: look closer (float32? an input within h of a kink? a small bug?)")


def rel_error(a, b, floor=None) -> float:
    """Max element-wise relative error between two arrays (host or device)."""
    a = numpy.asarray(to_numpy(a), dtype=numpy.float64)
    b = numpy.asarray(to_numpy(b), dtype=numpy.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error needs arrays of one shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    total = numpy.abs(a) + numpy.abs(b)
    if floor is None:
        floor = max(FLOOR_FRACTION * float(total.max()), 1e-300)
    return float((numpy.abs(a - b) / numpy.maximum(total, floor)).max())


def _scalar(value) -> float:
    return float(to_numpy(value))


def numerical_gradient(f, x, h=1e-6):
    """Central-difference gradient of the scalar ``f(x)`` with respect to ``x``.

    ``x`` is perturbed in place one element at a time and restored, so ``f``
    may read ``x`` through a closure as well. Use float64: in float32 the
    rounding noise (~1e-7·|f|/h) swamps the answer.
    """
    xp = array_module(x)
    grad = xp.zeros(x.shape, dtype=numpy.float64)
    for index in numpy.ndindex(*x.shape):
        original = x[index].copy() if hasattr(x[index], "copy") else x[index]
        x[index] = original + h
        plus = _scalar(f(x))
        x[index] = original - h
        minus = _scalar(f(x))
        x[index] = original
        grad[index] = (plus - minus) / (2 * h)
    return grad


def numerical_gradient_array(f, x, dout, h=1e-6):
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

    def __init__(self, name, inputs, tolerance, mutated_upstream, mutated_inputs):
        self.name = name
        self.inputs = inputs                  # list of InputCheck
        self.tolerance = tolerance
        self.mutated_upstream = mutated_upstream
        self.mutated_inputs = mutated_inputs  # names of inputs forward changed in place

    @property
    def errors(self) -> dict:
        return {c.name: c.error for c in self.inputs}

    @property
    def worst(self) -> float:
        return max((c.error for c in self.inputs), default=0.0)

    @property
    def passed(self) -> bool:
        return self.worst <= self.tolerance and not self.mutated_upstream and not self.mutated_inputs

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


def check_op(forward, backward, inputs: dict, wrt=None, kwargs=None, *, seed=0, h=1e-6,
             tolerance=TOLERANCE, name=None) -> CheckResult:
    """Check ``backward`` against finite differences of ``forward``.

    forward(*inputs.values(), **kwargs) -> (out, cache)
    backward(dout, cache) -> the gradients of the ``wrt`` inputs, in that order
        (a single array when there is one).
    inputs: name -> array, in forward's argument order. The ``wrt`` inputs
        must be float64 (default: every floating-point input).
    """
    kwargs = dict(kwargs or {})
    names = list(inputs)
    if wrt is None:
        wrt = [n for n in names if getattr(inputs[n], "dtype", None) is not None and inputs[n].dtype.kind == "f"]
    wrt = [wrt] if isinstance(wrt, str) else list(wrt)
    for n in wrt:
        if n not in inputs:
            raise KeyError(f"wrt names {n!r}, which is not among the inputs {names}")
        if getattr(inputs[n], "dtype", None) != numpy.float64:
            raise TypeError(f"input {n!r} must be float64 for a gradient check "
                            f"(finite differences in float32 are noise), got {getattr(inputs[n], 'dtype', type(inputs[n]))}")
    before = {n: to_numpy(v).copy() for n, v in inputs.items() if hasattr(v, "shape")}
    out, cache = forward(*inputs.values(), **kwargs)
    mutated_inputs = [n for n in before if not numpy.array_equal(before[n], to_numpy(inputs[n]))]
    for n in mutated_inputs:  # restore, so the numerical gradient sees the real input
        inputs[n][...] = array_module(inputs[n]).asarray(before[n])
    xp = array_module(out)
    g = xp.asarray(numpy.random.default_rng(seed).standard_normal(numpy.shape(out)), dtype=numpy.float64)
    g_before = g.copy()
    grads = _as_tuple(backward(g, cache))
    mutated_upstream = not bool(xp.all(g == g_before))

    def f(_):
        y, _cache = forward(*inputs.values(), **kwargs)
        return xp.sum(y * g_before)

    from ._hints import diagnose
    checks = []
    for position, n in enumerate(wrt):
        numeric = to_numpy(numerical_gradient(f, inputs[n], h))
        analytic = grads[position] if position < len(grads) else None
        error, hint = diagnose(n, analytic, numeric, len(grads), len(wrt), before[n])
        checks.append(InputCheck(n, error, None if analytic is None else to_numpy(analytic), numeric, hint))
    return CheckResult(name or getattr(forward, "__name__", "op"), checks, tolerance,
                       mutated_upstream, mutated_inputs)


def check_backward(forward, backward, inputs: dict, wrt=None, kwargs=None, *, seed=0, h=1e-6,
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


def _perturb(params, directions, scale):
    for key, u in directions.items():
        params[key] += scale * u


def directional_check(f, params: dict, grads: dict, num_directions=3, *, h=1e-6, seed=0,
                      tolerance=MODEL_TOLERANCE):
    """Check a whole model's gradients along random directions (Chainer style).

    f() -> scalar loss computed from ``params`` (a dict of arrays that this
    function perturbs in place and restores). For a random direction u (one
    array per parameter, unit norm overall) the numeric directional
    derivative ``(f(p + h·u) - f(p - h·u)) / 2h`` -- two forward passes --
    must equal ``Σ_k <grads[k], u_k>``. A wrong gradient anywhere shows up in
    every direction with probability 1.

    Returns (passed, [DirectionalCheck, ...]).
    """
    missing = sorted(set(params) - set(grads))
    if missing:
        raise KeyError(f"grads lacks entries for parameters {missing}")
    rng = numpy.random.default_rng(seed)
    results = []
    for _ in range(num_directions):
        raw = {k: rng.standard_normal(numpy.shape(p)) for k, p in params.items()}
        norm = numpy.sqrt(sum(float((u * u).sum()) for u in raw.values())) or 1.0
        directions = {k: array_module(params[k]).asarray(u / norm, dtype=params[k].dtype) for k, u in raw.items()}
        analytic = sum(_scalar(array_module(grads[k]).sum(grads[k] * u)) for k, u in directions.items())
        _perturb(params, directions, h)
        plus = _scalar(f())
        _perturb(params, directions, -2 * h)
        minus = _scalar(f())
        _perturb(params, directions, h)
        numeric = (plus - minus) / (2 * h)
        error = abs(numeric - analytic) / max(abs(numeric) + abs(analytic), 1e-300)
        results.append(DirectionalCheck(numeric, analytic, error))
    return all(r.error <= tolerance for r in results), results


def coordinate_check(f, params: dict, grads: dict, per_param=2, *, h=1e-6, seed=0,
                     tolerance=MODEL_TOLERANCE):
    """Central differences at a few sampled coordinates of every parameter.

    Complements ``directional_check``: a directional derivative sums over all
    parameters, so this one names the parameter that is wrong.
    Returns (passed, {name: worst rel. error}).
    """
    rng = numpy.random.default_rng(seed)
    host_grads = {key: to_numpy(grads[key]) for key in params}
    # the floor comes from the whole model's gradient scale: some parameters have a
    # true gradient of zero (a key bias shifts every score of a softmax row equally)
    scale = max((float(numpy.abs(g).max()) for g in host_grads.values() if g.size), default=0.0)
    worst = {}
    for key, p in params.items():
        grad = host_grads[key]
        errors = []
        for _ in range(min(per_param, p.size)):
            index = tuple(int(rng.integers(s)) for s in p.shape)
            original = p[index].copy()
            p[index] = original + h
            plus = _scalar(f())
            p[index] = original - h
            minus = _scalar(f())
            p[index] = original
            numeric = (plus - minus) / (2 * h)
            analytic = float(grad[index])
            denominator = max(abs(numeric) + abs(analytic), FLOOR_FRACTION * scale, 1e-300)
            errors.append(abs(numeric - analytic) / denominator)
        worst[key] = max(errors, default=0.0)
    return all(e <= tolerance for e in worst.values()), worst
