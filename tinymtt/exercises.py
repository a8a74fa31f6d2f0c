"""Exercises: student copies of the lessons, and the checks a student runs.

Instructors mark solutions in a lesson's code cells with nbgrader's markers::

    def softmax_backward(dout, probs):
        ### BEGIN SOLUTION
        return probs * (dout - (dout * probs).sum(axis=-1, keepdims=True))
        ### END SOLUTION

``make_student_copy`` replaces each marked region (markers included) with a
stub at the same indentation::

        # YOUR CODE HERE
        raise NotImplementedError("exercise: ...")

and clears every output, so nbgrader users can take the lessons as they are
and everyone else runs ``tinymtt exercises OUT_DIR``.

In the lesson, the check cell after an exercise calls ``check_exercise``
(gradients, via the gradient checker's verdict) or ``check_equal`` (values).
Either stops the notebook with ``ExerciseIncomplete`` while the stub is still
there, and with ``ExerciseFailed`` (the verdict: which gradient, where, a
hint) while the answer is wrong -- never a silent pass.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .gradcheck import check_backward

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
    from .backend import to_numpy
    from .gradcheck import rel_error
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


def _stub_source(lines):
    """Replace every BEGIN..END region of a cell's lines with the stub (same indentation)."""
    out, inside = [], False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if inside:
                raise ValueError(f"nested '{BEGIN}' marker")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# YOUR CODE HERE\n")
            out.append(f"{indent}{STUB}\n")
        elif stripped.startswith(END):
            if not inside:
                raise ValueError(f"'{END}' without '{BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"'{BEGIN}' without '{END}'")
    return out


def _lines(source):
    return source.splitlines(keepends=True) if isinstance(source, str) else list(source)


def make_student_copy(notebook_path, out_path) -> int:
    """Write the student copy of one notebook; returns the number of regions replaced."""
    notebook_path, out_path = Path(notebook_path), Path(out_path)
    try:
        notebook = json.loads(notebook_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{notebook_path} is not a readable notebook: {error}") from None
    replaced = 0
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        lines = _lines(cell.get("source", ""))
        count = sum(1 for line in lines if line.strip().startswith(BEGIN))
        if count:
            try:
                cell["source"] = _stub_source(lines)
            except ValueError as error:
                raise ValueError(f"{notebook_path}: {error}") from None
            replaced += count
        cell["outputs"], cell["execution_count"] = [], None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    return replaced


def default_lessons_dir() -> Path:
    """lessons/ beside the package (a source checkout), else ./lessons."""
    beside = Path(__file__).resolve().parents[1] / "lessons"
    return beside if beside.is_dir() else Path("lessons")


def write_exercises(out_dir, lessons_dir=None) -> dict:
    """Student copies of every lesson into ``out_dir``: {notebook name: regions replaced}."""
    lessons_dir = Path(lessons_dir) if lessons_dir is not None else default_lessons_dir()
    notebooks = sorted(lessons_dir.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no lesson notebooks (NN_name.ipynb) in {lessons_dir}")
    out_dir = Path(out_dir)
    if out_dir.resolve() == lessons_dir.resolve():
        raise ValueError("the student copies must go to another folder than the lessons themselves")
    return {path.name: make_student_copy(path, out_dir / path.name) for path in notebooks}
