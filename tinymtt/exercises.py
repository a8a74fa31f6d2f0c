"""Exercises: the checks a student runs in a lesson, and the lessons' pace.

A lesson's exercise is a function whose body an instructor marks with
nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION``; the student copy
(``tinymtt exercises OUT_DIR``, tinymtt.commands.exercises) replaces it with
``STUB``. The check cell after an exercise calls ``check_exercise``
(gradients, via the gradient checker's verdict) or ``check_equal`` (values).
Either stops the notebook with ``ExerciseIncomplete`` while the stub is still
there, and with ``ExerciseFailed`` (the verdict: which gradient, where, a
hint) while the answer is wrong -- never a silent pass.
"""

from __future__ import annotations

import os

from .backend import to_numpy
from .gradcheck import check_backward, rel_error

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "raise NotImplementedError(\"exercise: replace this line with your code\")"
QUICK_VARIABLE = "TINYMTT_QUICK"


class ExerciseIncomplete(AssertionError):
    """The exercise still holds its TODO stub."""


class ExerciseFailed(AssertionError):
    """The exercise runs but its answer is wrong (the message says where)."""


def quick() -> bool:
    """True when ``TINYMTT_QUICK=1``: lessons shorten their training cells (the test suite sets it)."""
    return os.environ.get(QUICK_VARIABLE, "0").strip() not in ("", "0", "false", "no")


def steps(full: int, quick_steps: int) -> int:
    """The number of training steps for a lesson cell: ``full``, or ``quick_steps`` under TINYMTT_QUICK=1."""
    return quick_steps if quick() else full


def _incomplete(name):
    return ExerciseIncomplete(f"{name}: not done yet -- the cell above still raises NotImplementedError. "
                              f"Replace the line `{STUB}` with your code, run that cell, then this one again.")


def check_exercise(name, forward, backward, inputs, wrt=None, kwargs=None, **options):
    """Check a student's backward pass; print the verdict; stop the notebook unless it is right."""
    try:
        result = check_backward(forward, backward, inputs, wrt, kwargs, name=name, verbose=False, **options)
    except NotImplementedError:
        raise _incomplete(name) from None
    print(result.report())
    if not result.passed:
        raise ExerciseFailed(f"{name}: not right yet -- see the verdict above")
    return result


def check_equal(name, compute, expected, tolerance=1e-7):
    """Check a student's forward computation against the library's ``expected`` array."""
    try:
        got = compute()
    except NotImplementedError:
        raise _incomplete(name) from None
    got, expected = to_numpy(got), to_numpy(expected)
    if getattr(got, "shape", None) != expected.shape:
        raise ExerciseFailed(f"{name}: your result has shape {getattr(got, 'shape', type(got).__name__)}, "
                             f"expected {expected.shape}")
    error = rel_error(got, expected)
    if error > tolerance:
        raise ExerciseFailed(f"{name}: not right yet -- relative error {error:.1e} (> {tolerance:.0e})")
    print(f"{name}: right (relative error {error:.1e})")
    return error
