"""Why a gradient is wrong: the patterns a student's backward pass falls into.

``checks.check_op`` hands each (analytic, numeric) pair to ``diagnose``;
``format_report`` turns a ``CheckResult`` into the verdict a student reads.
Each hint is tried only when the plain comparison failed, and each says what
to look at, not just that something is off.
"""

from __future__ import annotations

import math

import numpy

from ..backend import to_numpy
from .numeric import FLOOR_FRACTION, THRESHOLDS, TOLERANCE, rel_error

_CLOSE = 1e-6   # "matches" for the pattern tests below (they compare two float64 arrays)


def _matches(a, b) -> bool:
    return a.shape == b.shape and rel_error(a, b) <= _CLOSE


def _shape_hint(name, a, n):
    if a.ndim == 2 and a.shape == n.shape[::-1] and _matches(a.T, n):
        return (f"d{name} is transposed: it has shape {a.shape} but {name} has shape {n.shape}, "
                f"and its transpose is right (swap the operands of the matmul, or .T)")
    if a.ndim > n.ndim and a.shape[a.ndim - n.ndim:] == n.shape:
        summed = a.reshape((-1,) + n.shape).sum(axis=0)
        if _matches(summed, n):
            lead = a.shape[:a.ndim - n.ndim]
            return (f"d{name} keeps the batch axis {lead}: every example contributes to d{name}, "
                    f"so sum over axis {tuple(range(a.ndim - n.ndim))} (missing sum over the batch)")
        return (f"d{name} has shape {a.shape} with extra leading axes; {name} has shape {n.shape} "
                f"-- a gradient has its input's shape (sum over the batch?)")
    return f"d{name} has shape {a.shape}, but {name} has shape {n.shape}: a gradient has its input's shape"


def _factor_hint(name, a, n):
    c = float((a * n).sum() / (n * n).sum())
    if abs(c - 1) < 1e-5 or not _matches(a, c * n):
        return ""  # c ≈ 1: not a factor, just a little off (see the fallback in diagnose)
    if abs(c + 1) < 1e-6:
        return f"d{name} has the right size but the wrong sign (a minus sign lost or added)"
    for k in range(2, 4097):
        if abs(c - k) < 1e-6 * k:
            return (f"d{name} is off by a constant factor {k}: yours = {k} × the right one "
                    f"(a sum where a mean belongs, or a term counted {k} times?)")
        if abs(c * k - 1) < 1e-6:
            return (f"d{name} is off by a constant factor 1/{k}: yours = the right one / {k} "
                    f"(a mean where a sum belongs, or divided by an axis of size {k} once too often?)")
    return f"d{name} is off by a constant factor: yours = {c:.6g} × the right one (a scale such as 1/√d, 2 or 1/N?)"


def diagnose(name, analytic, numeric, returned, expected, value):
    """(rel. error, hint) for one input's gradient; the hint is "" when right.

    name: the input's name; analytic: what backward returned (or None);
    numeric: the finite-difference gradient (host float64); returned/expected:
    how many gradients backward gave / should give; value: the input itself.
    """
    if analytic is None:
        if returned < expected:
            return math.inf, (f"backward returned {returned} gradient(s) but {expected} were expected "
                              f"(one per input checked, in the forward's argument order); d{name} is missing")
        return math.inf, f"backward returned None for d{name}"
    if not hasattr(analytic, "shape"):
        return math.inf, f"d{name} must be an array, got {type(analytic).__name__}"
    a = numpy.asarray(to_numpy(analytic), dtype=numpy.float64)
    n = numpy.asarray(numeric, dtype=numpy.float64)
    if a.shape != n.shape:
        return math.inf, _shape_hint(name, a, n)
    if not numpy.all(numpy.isfinite(a)):
        return math.inf, f"d{name} contains NaN or inf (a division by zero, or exp of a large number?)"
    if not numpy.all(numpy.isfinite(n)):
        return math.inf, (f"the forward pass gives NaN or inf near these inputs, so the numerical gradient "
                          f"of {name} is not finite: fix the forward first (a log of 0, exp overflow, 0/0?)")
    error = rel_error(a, n)
    if error <= TOLERANCE:
        return error, ""
    if not numpy.any(n):
        return error, f"the output does not depend on {name} here (numerical gradient 0), but d{name} is not zero"
    if not numpy.any(a):
        return error, f"d{name} is all zeros: is it computed, returned, and (in a layer) accumulated with +=?"
    if a.ndim == 2 and a.shape[0] == a.shape[1] and _matches(a.T, n):
        return error, f"d{name} is transposed: its transpose is right (swap the operands of the matmul, or .T)"
    hint = _factor_hint(name, a, n)
    if hint:
        return error, hint
    if error < 1e-4:
        return error, (f"d{name} is close but above the tolerance: float32 arithmetic inside the op "
                       f"(a float32 temporary?), or an input within h of a kink (ReLU at 0, a mask boundary)?")
    wrong = numpy.abs(a - n) > 1e-6 * (numpy.abs(a) + numpy.abs(n)).max()
    if 0 < wrong.sum() < wrong.size:
        return error, (f"{int(wrong.sum())} of {wrong.size} elements of d{name} are wrong and the rest are right: "
                       f"look at what is special about the wrong ones (a mask, a boundary, one term of a sum)")
    return error, ""


def _worst(a, n):
    total = numpy.abs(a) + numpy.abs(n)
    floor = max(FLOOR_FRACTION * float(total.max()), 1e-300)
    index = numpy.unravel_index(int(numpy.argmax(numpy.abs(a - n) / numpy.maximum(total, floor))), a.shape)
    return tuple(int(i) for i in index)


def _distinct(a: float, b: float):
    """Both numbers with 6 significant digits, or as many more as it takes to tell them apart."""
    for digits in (6, 8, 10, 12, 17):
        left, right = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if left != right:
            break
    return left, right


def format_report(result) -> str:
    """A ``CheckResult`` as the verdict a student reads."""
    wrong = [c for c in result.inputs if c.error > result.tolerance]
    if result.passed:
        head = f"check_backward({result.name}): all {len(result.inputs)} gradient(s) right"
    elif wrong:
        head = f"check_backward({result.name}): {len(wrong)} of {len(result.inputs)} gradient(s) WRONG"
    else:
        head = (f"check_backward({result.name}): FAILED -- the gradient values are right, "
                f"but the op changes arrays it must only read")
    lines = [head]
    width = max((len(c.name) for c in result.inputs), default=1) + 1
    for c in result.inputs:
        verdict = "right" if c.error <= result.tolerance else "WRONG"
        line = f"  {'d' + c.name:<{width}} {verdict}  rel. error {c.error:.1e}"
        a = c.analytic
        if verdict == "WRONG" and a is not None and getattr(a, "shape", None) == c.numeric.shape and a.size:
            index = _worst(numpy.asarray(a, dtype=numpy.float64), c.numeric)
            yours, numerical = _distinct(float(a[index]), float(c.numeric[index]))
            line += f"   worst at index {index}: yours {yours}, numerical {numerical}"
        lines.append(line)
        if c.hint:
            lines.append(f"  {' ' * width} hint: {c.hint}")
    if result.mutated_upstream:
        lines.append("  your backward changed its upstream gradient dout in place (e.g. dout[x <= 0] = 0): "
                     "the caller's array is now wrong. Make a new array instead: dout * (x > 0)")
    for n in result.mutated_inputs:
        lines.append(f"  your forward changed its input {n} in place: compute into a new array")
    for n in getattr(result, "mutated_by_backward", ()):
        lines.append(f"  your backward changed the input {n} in place (through the cache): "
                     f"compute into a new array")
    lines.append(f"  ({THRESHOLDS})")
    return "\n".join(lines)
