"""Input checks with errors a student can act on.

Bad input must fail at the door with a message that names the argument, what
was expected and what was received -- never a NumPy traceback from deep inside
an op, never a silent NaN, never (on CuPy) an out-of-range index that wraps
around silently. This module sits beside ``backend`` at the bottom of the
layers; every other layer may use it.
"""

from __future__ import annotations

import math
import numbers

import numpy

from .backend import array_module, is_cupy_array


class ShapeError(ValueError):
    """An array argument has the wrong shape, dtype or values."""


def _is_array(x) -> bool:
    return isinstance(x, numpy.ndarray) or is_cupy_array(x)


def describe(x) -> str:
    """A short description of what was received: 'float32 array of shape (2, 3)'."""
    if _is_array(x):
        return f"{x.dtype} array of shape {tuple(x.shape)}"
    return f"{type(x).__name__}"


_KINDS = (None, "float", "int", "bool")


def check_array(x, name: str, *, ndim=None, min_ndim=None, kind=None):
    """Require an ndarray (NumPy or CuPy); optionally its ndim and dtype kind.

    kind: 'float' (real floating point), 'int' (signed or unsigned integer),
    'bool', or None for any.
    """
    if kind not in _KINDS:
        raise ValueError(f"check_array: kind must be one of {_KINDS}, got {kind!r}")
    if not _is_array(x):
        raise TypeError(f"{name} must be a NumPy or CuPy array, got {describe(x)}")
    if ndim is not None and x.ndim != ndim:
        raise ShapeError(f"{name} must have {ndim} dimensions, got {describe(x)}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ShapeError(f"{name} must have at least {min_ndim} dimensions, got {describe(x)}")
    if kind == "float" and x.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got {describe(x)}")
    if kind == "int" and x.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array (token ids / class labels), got {describe(x)}")
    if kind == "bool" and x.dtype.kind != "b":
        raise TypeError(f"{name} must be a boolean array (True = keep), got {describe(x)}")
    return x


def check_shape(x, name: str, expected, labels: str = ""):
    """Require ``x.shape`` to match ``expected`` (None entries match any size).

    labels: the letters of docs/DESIGN.md for the message, e.g. "(B, S, D)".
    """
    check_array(x, name)
    shape = tuple(x.shape)
    ok = len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape))
    if not ok:
        want = "(" + ", ".join("?" if e is None else str(e) for e in expected) + ("," if len(expected) == 1 else "") + ")"
        if labels:
            want = f"{labels} = {want}"
        raise ShapeError(f"{name} must have shape {want}, got {describe(x)}")
    return x


def check_same_module(**arrays):
    """All arrays on the same device (all NumPy or all CuPy)."""
    kinds = {name: ("cupy" if is_cupy_array(a) else "numpy") for name, a in arrays.items() if a is not None}
    if len(set(kinds.values())) > 1:
        listing = ", ".join(f"{n} on {k}" for n, k in kinds.items())
        raise TypeError(f"arrays must all be on one backend, got {listing}; move them with tinymtt.backend.to_device")


def check_index_range(ids, name: str, upper: int, what: str = "vocabulary size"):
    """Require integer ``ids`` with ``0 <= ids < upper``.

    CuPy (like CUDA in general) wraps or clamps an out-of-range index silently,
    so the check is explicit and happens before any indexing.
    """
    check_array(ids, name, kind="int")
    if ids.size == 0:
        return ids
    xp = array_module(ids)
    low, high = int(xp.min(ids)), int(xp.max(ids))
    if low < 0 or high >= upper:
        bad = low if low < 0 else high
        raise ShapeError(f"{name} must lie in [0, {upper}) ({what} {upper}), got a value {bad}")
    return ids


def check_finite(x, name: str):
    """x holds no NaN and no ±inf: else a ValueError naming the first bad entry (data, not a diverged run)."""
    xp = array_module(x)
    finite = xp.isfinite(x)
    if not bool(finite.all()):
        index = tuple(int(i) for i in xp.argwhere(~finite)[0])
        raise ValueError(f"{name} must be finite, but holds {float(x[index])} at index {index}")


def check_probability(p, name: str):
    """Require a float ``0 <= p < 1`` (dropout rates)."""
    # numbers.Real admits NumPy scalars (numpy.float32(0.1)) as well as int and float
    if isinstance(p, (bool, numpy.bool_)) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {p!r}")
    return float(p)


def check_integer(value, name: str, low: int = 0, *, wanted: str | None = None) -> int:
    """Require an integer >= ``low`` (a Python or NumPy integer, never a bool); returns it as an int.

    wanted: how the message words the requirement (default "an integer >= low").
    """
    if isinstance(value, (bool, numpy.bool_)) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be {wanted or f'an integer >= {low}'}, got {value!r}")
    return int(value)


def check_positive_integer(value, name: str) -> int:
    """Require an integer >= 1 (sizes, counts, steps); returns it as an int."""
    return check_integer(value, name, 1, wanted="a positive integer")


def check_number(value, name: str, *, low=0.0, high=math.inf, low_open=False, high_open=False) -> float:
    """Require a finite real number in the interval [low, high] (ends open on request); returns a float."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, numpy.bool_)) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return float(value)


def scalar_upstream(dout, dtype, xp):
    """The upstream gradient of a 0-d loss, in the loss's dtype (no float64 upcast).

    dout: a Python float (kept as it is: a "weak" scalar takes the array's dtype),
    a NumPy scalar or a 0-d array; anything else is a named error.
    """
    if isinstance(dout, (int, float)) and not isinstance(dout, bool):
        return float(dout)
    if getattr(dout, "ndim", None) == 0 and not isinstance(dout, xp.ndarray):
        dout = xp.asarray(dout)   # a NumPy scalar, e.g. one entry of a (T,) array of loss gradients
    check_array(dout, "dout", kind="float")
    if dout.ndim != 0:
        raise ShapeError(f"dout must be a scalar (a 0-d array or a Python float: the loss is 0-d), "
                         f"got {describe(dout)}")
    return xp.asarray(dout, dtype=dtype)
