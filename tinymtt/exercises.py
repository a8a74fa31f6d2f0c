"""Exercises: the checks a student runs in a lesson, and the lessons' pace.

A lesson's exercise is a function whose body an instructor marks with
nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION``; the student copy
(``tinymtt exercises OUT_DIR``, tinymtt.commands.exercises) replaces it with
``STUB``. The check cell after an exercise calls ``check_exercise``
(gradients, via the gradient checker's verdict) or ``check_equal`` (values).
Either stops the notebook with ``ExerciseIncomplete`` while the stub is still
there, and with ``ExerciseFailed`` (the verdict: which gradient, where, a
hint) while the answer is wrong -- never a silent pass.

Graded, so neither check returns anything: a grader (nbgrader) reads a numeric
cell output as partial credit. A graded cell imports its own checker, and the
checker refuses to run when it has been shadowed (a same-named function in the
notebook) or monkey-patched (this module's checkers, or the gradient checker
they rely on, replaced): a locked cell cannot be edited, and this stops the
cheap ways around it. The instructor's kit is instructors/ (docs/DESIGN.md,
"Exercises and grading").
"""

from __future__ import annotations

import os
import sys
import types

from . import backend, gradcheck
from .backend import to_numpy
from .gradcheck import check_backward, rel_error

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "raise NotImplementedError(\"exercise: replace this line with your code\")"
QUICK_VARIABLE = "TINYMTT_QUICK"


class ExerciseIncomplete(AssertionError):
    """The exercise still holds its TODO stub."""


class ExerciseFailed(AssertionError):
    """The exercise runs but its answer is wrong (the message says where)."""


class ExerciseTampered(AssertionError):
    """The checker was shadowed or monkey-patched: it will not grade."""


def quick() -> bool:
    """True when ``TINYMTT_QUICK=1``: lessons shorten their training cells (the test suite sets it)."""
    return os.environ.get(QUICK_VARIABLE, "0").strip() not in ("", "0", "false", "no")


def steps(full: int, quick_steps: int) -> int:
    """The number of training steps for a lesson cell: ``full``, or ``quick_steps`` under TINYMTT_QUICK=1."""
    return quick_steps if quick() else full


def _incomplete(name):
    return ExerciseIncomplete(f"{name}: not done yet -- your code for it still raises NotImplementedError. "
                              "Replace the `raise NotImplementedError` line of the exercise with your code, "
                              "run that cell, then this check again.")


def _genuine():
    """{(module name, function name): code} of every function the checks rely on, as imported."""
    return {(module.__name__, function.__name__): function.__code__
            for module, function in ((gradcheck, check_backward), (gradcheck, rel_error), (backend, to_numpy))}


def _refuse_tampering(checker):
    """Raise ExerciseTampered unless the caller's ``checker`` and the functions it relies on are genuine."""
    name = checker.__name__
    caller = sys._getframe(2).f_globals
    if name in caller and caller[name] is not checker:
        raise ExerciseTampered(f"{name} is shadowed here by another function of that name: "
                               f"run `from tinymtt.exercises import {name}` (the check cells do)")
    here = sys.modules[__name__].__dict__
    for (module_name, function_name), code in _GENUINE.items():
        for namespace, where in ((sys.modules[module_name].__dict__, module_name), (here, __name__)):
            if getattr(namespace.get(function_name), "__code__", None) is not code:
                raise ExerciseTampered(f"{where}.{function_name} was replaced: restart the kernel "
                                       "and run the notebook from the top")


def check_exercise(name, forward, backward, inputs, wrt=None, kwargs=None, **options) -> None:
    """Check a student's backward pass; print the verdict; stop the notebook unless it is right."""
    _refuse_tampering(check_exercise)
    try:
        result = check_backward(forward, backward, inputs, wrt, kwargs, name=name, verbose=False, **options)
    except NotImplementedError:
        raise _incomplete(name) from None
    print(result.report())
    if not result.passed:
        raise ExerciseFailed(f"{name}: not right yet -- see the verdict above")


def check_equal(name, compute, expected, tolerance=1e-7, mistakes=None) -> None:
    """Check a student's forward computation against the library's ``expected`` array.

    mistakes: {hint: the array a known wrong answer gives}; a result equal to one of them fails with that hint.
    """
    _refuse_tampering(check_equal)
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
        hints = [hint for hint, wrong in (mistakes or {}).items()
                 if to_numpy(wrong).shape == got.shape and rel_error(got, to_numpy(wrong)) <= tolerance]
        raise ExerciseFailed(f"{name}: not right yet -- relative error {error:.1e} (> {tolerance:.0e})"
                             + "".join(f"; hint: {hint}" for hint in hints))
    print(f"{name}: right (relative error {error:.1e})")


_GENUINE = _genuine()
CHECKERS = ("check_exercise", "check_equal")
_GUARDED = CHECKERS + ("_GENUINE", "_GUARDED", "_genuine", "_refuse_tampering", "_incomplete", "__class__")


class _GuardedModule(types.ModuleType):
    """This module, refusing to have its checkers replaced (``tinymtt.exercises.check_equal = ...``)."""

    def __setattr__(self, name, value):
        if name in _GUARDED:
            raise ExerciseTampered(f"tinymtt.exercises.{name} cannot be replaced: the graded checks rely on it")
        super().__setattr__(name, value)

    def __delattr__(self, name):
        if name in _GUARDED:
            raise ExerciseTampered(f"tinymtt.exercises.{name} cannot be removed: the graded checks rely on it")
        super().__delattr__(name)


sys.modules[__name__].__class__ = _GuardedModule
