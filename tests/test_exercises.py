"""The student's checks: nothing numeric returned, a stub-free 'not done' text, no grading when tampered with."""

import numpy as np
import pytest

import tinymtt.exercises as exercises
import tinymtt.gradcheck as gradcheck
from tinymtt.exercises import (ExerciseFailed, ExerciseIncomplete, ExerciseTampered, check_equal,
                               check_exercise)
from tinymtt.ops import linear_backward, linear_forward


def not_done(*_):
    raise NotImplementedError()           # nbgrader's own stub line, not tinymtt's


INPUTS = {"x": np.random.default_rng(0).standard_normal((2, 3)), "w": np.random.default_rng(1).standard_normal((3, 2))}


def test_right_answers_return_nothing_a_grader_could_score():
    assert check_equal("ones", lambda: np.ones(3), np.ones(3)) is None
    assert check_exercise("linear", linear_forward, linear_backward, INPUTS) is None


def test_wrong_answers_fail_with_the_verdict():
    with pytest.raises(ExerciseFailed, match="relative error"):
        check_equal("ones", lambda: 2 * np.ones(3), np.ones(3))
    with pytest.raises(ExerciseFailed, match="verdict"):
        check_exercise("linear", linear_forward, lambda dout, cache: tuple(2 * g if g is not None else g
                                                                           for g in linear_backward(dout, cache)),
                       INPUTS)


@pytest.mark.parametrize("check", [lambda: check_equal("mine", not_done, np.ones(3)),
                                   lambda: check_exercise("mine", linear_forward, not_done, INPUTS)])
def test_not_done_names_no_stub_line_and_no_cell_above(check):
    with pytest.raises(ExerciseIncomplete) as caught:
        check()
    message = str(caught.value)
    assert "mine: not done yet" in message and "raise NotImplementedError" in message
    assert exercises.STUB not in message and "cell above" not in message


def test_a_shadowed_checker_refuses_to_grade():
    namespace = {"check_equal": lambda *args: None}      # the student's own check_equal in the notebook
    code = "import tinymtt.exercises\ntinymtt.exercises.check_equal('x', lambda: 1.0, 2.0)"
    with pytest.raises(ExerciseTampered, match="shadowed"):
        exec(code, namespace)


def test_a_replaced_checker_is_refused():
    with pytest.raises(ExerciseTampered, match="cannot be replaced"):
        exercises.check_exercise = lambda *args, **kwargs: None
    with pytest.raises(ExerciseTampered, match="cannot be removed"):
        del exercises.check_equal
    with pytest.raises(ExerciseTampered, match="cannot be replaced"):
        exercises.__class__ = type(pytest)                # the plain module type: no guard
    assert exercises.check_equal is check_equal


@pytest.mark.parametrize("where", [gradcheck, exercises])
def test_a_patched_helper_stops_the_checks(monkeypatch, where):
    monkeypatch.setattr(where, "rel_error", lambda got, expected: 0.0)
    with pytest.raises(ExerciseTampered, match="rel_error was replaced"):
        check_equal("ones", lambda: 2 * np.ones(3), np.ones(3))


def test_a_known_wrong_answer_fails_with_its_hint():
    right, wrong = np.array([0.04, 0.01]), np.array([0.04, 0.008])
    with pytest.raises(ExerciseFailed, match="hint: divide by n - 1"):
        check_equal("paired", lambda: wrong, right, mistakes={"divide by n - 1": wrong, "the sign": -right})
    with pytest.raises(ExerciseFailed) as caught:                       # another wrong answer: no hint
        check_equal("paired", lambda: 2 * right, right, mistakes={"divide by n - 1": wrong})
    assert "hint" not in str(caught.value)
    assert check_equal("paired", lambda: right, right, mistakes={"divide by n - 1": wrong}) is None
