"""Checking one op's backward pass against finite differences, with a verdict a student can act on.

``check_op(forward, backward, inputs)`` checks every input's gradient of an
op through the scalar ``sum(out · g)`` with a *random* upstream gradient g
(never all ones: the rows of a softmax sum to 1, so with g = 1 a wrong
softmax backward still "passes"). ``check_backward`` runs the same check and
prints the verdict (tinymtt.gradcheck.hints: which gradient, where, and why
it looks wrong).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from ..backend import array_module, to_numpy
from .hints import diagnose, format_report
from .numeric import STEP, TOLERANCE, numerical_gradient, require_float64

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
        require_float64(inputs[n], f"input {n!r}")
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
