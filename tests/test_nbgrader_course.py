"""A real nbgrader course takes the lessons as they are, with instructors/nbgrader_config.py.

One course, one assignment holding every lesson, three students: "solutions"
hands in the release with the lessons' solutions filled in, "stubs" hands in
the release untouched, "wrong" hands in lesson 05 with dgamma doubled, and
"gamer" lesson 01 with no answer but its own check_exercise and a patched
gradient checker. The
notebooks run with TINYMTT_QUICK=1 (the kit's config sets it too).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbgrader", reason="the nbgrader course test needs nbgrader: pip install -e '.[test]'")
pytest.importorskip("ipykernel", reason="the nbgrader course test needs the test extra: pip install -e '.[test]'")

from nbgrader.api import Gradebook  # noqa: E402

from tinymtt.commands.exercises import make_student_copy  # noqa: E402

from helpers import missing_lesson_extra

ROOT = Path(__file__).resolve().parents[1]
# a lesson whose extra is not installed cannot run here: it is left out of the course (tests/test_lessons.py
# reports the skip and its reason)
LESSONS = [path for path in sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb")) if not missing_lesson_extra(path.stem)]
ASSIGNMENT = "lessons"
WRONG_LESSON = "05_layer_norm"
RIGHT_DGAMMA = "dgamma = (dout * x_hat).reshape(-1, width).sum(axis=0)"
WRONG_DGAMMA = "dgamma = 2 * (dout * x_hat).reshape(-1, width).sum(axis=0)"
GAMED_LESSON = "01_linear_and_gradient_check"
GAMING = """
def check_exercise(*args, **kwargs):         # shadows the checker: passes whatever it is given
    print("linear backward: right")


import tinymtt.gradcheck                     # and patches the gradient checker behind it
tinymtt.gradcheck.check_backward = lambda *args, **kwargs: None
"""


def nbgrader(course, *args):
    env = dict(os.environ, TINYMTT_QUICK="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def nbgrader_cells(notebook):
    return {cell["metadata"]["nbgrader"]["grade_id"]: cell for cell in notebook["cells"]
            if "nbgrader" in cell.get("metadata", {})}


def hand_in(course, student, notebooks):
    """Write ``notebooks`` ({file name: notebook}) as ``student``'s submission."""
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    for name, notebook in notebooks.items():
        (folder / name).write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def solved(release, lesson):
    """The released notebook with every solution cell holding the lesson's own solution."""
    notebook = json.loads(release.read_text())
    answers = nbgrader_cells(json.loads(lesson.read_text()))
    for grade_id, cell in nbgrader_cells(notebook).items():
        if cell["metadata"]["nbgrader"]["solution"]:
            cell["source"] = answers[grade_id]["source"]
    return notebook


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "instructors" / "nbgrader_config.py", course)
    source = course / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    for lesson in LESSONS:
        shutil.copy(lesson, source)
    nbgrader(course, "generate_assignment", ASSIGNMENT)
    release = course / "release" / ASSIGNMENT

    hand_in(course, "solutions", {lesson.name: solved(release / lesson.name, lesson) for lesson in LESSONS})
    hand_in(course, "stubs", {lesson.name: json.loads((release / lesson.name).read_text()) for lesson in LESSONS})
    wrong = solved(release / f"{WRONG_LESSON}.ipynb", ROOT / "lessons" / f"{WRONG_LESSON}.ipynb")
    planted = [cell for cell in nbgrader_cells(wrong).values() if RIGHT_DGAMMA in "".join(cell["source"])]
    assert len(planted) == 1, "the planted wrong answer no longer matches lesson 05's solution"
    planted[0]["source"] = "".join(planted[0]["source"]).replace(RIGHT_DGAMMA, WRONG_DGAMMA)
    hand_in(course, "wrong", {f"{WRONG_LESSON}.ipynb": wrong})
    gamed = json.loads((release / f"{GAMED_LESSON}.ipynb").read_text())
    answer = next(cell for cell in nbgrader_cells(gamed).values() if cell["metadata"]["nbgrader"]["solution"])
    answer["source"] = "".join(answer["source"]) + "\n" + GAMING
    hand_in(course, "gamer", {f"{GAMED_LESSON}.ipynb": gamed})

    nbgrader(course, "autograde", ASSIGNMENT, "--create")
    nbgrader(course, "generate_feedback", ASSIGNMENT)
    return course


def grades(course, student, lesson):
    """{grade id: (score, max score)} of ``student``'s autograded ``lesson``."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(lesson, ASSIGNMENT, student)
        return {grade.name: (grade.score, grade.max_score) for grade in notebook.grades}


def test_the_release_is_the_tinymtt_exercises_copy_cell_for_cell(course, tmp_path):
    for lesson in LESSONS:
        make_student_copy(lesson, tmp_path / lesson.name)
        ours = json.loads((tmp_path / lesson.name).read_text())["cells"]
        released = json.loads((course / "release" / ASSIGNMENT / lesson.name).read_text())["cells"]
        assert [(c["cell_type"], "".join(c["source"])) for c in released] == \
               [(c["cell_type"], "".join(c["source"])) for c in ours], lesson.name


@pytest.mark.parametrize("lesson", [path.stem for path in LESSONS])
def test_solutions_get_full_marks_and_stubs_zero(course, lesson):
    right, stubs = grades(course, "solutions", lesson), grades(course, "stubs", lesson)
    assert set(right) == set(stubs)
    for grade_id, (score, max_score) in right.items():
        assert max_score > 0 and score == max_score, f"{lesson} {grade_id}: solution scored {score} of {max_score}"
        assert stubs[grade_id][0] == 0, f"{lesson} {grade_id}: the stub scored {stubs[grade_id][0]}"


def test_lessons_with_exercises_have_points(course):
    graded = [path.stem for path in LESSONS if grades(course, "solutions", path.stem)]
    assert len(graded) >= 11, graded


def test_a_wrong_answer_loses_its_points_and_the_feedback_gives_the_hint(course):
    wrong, right = grades(course, "wrong", WRONG_LESSON), grades(course, "solutions", WRONG_LESSON)
    assert set(wrong) == set(right)
    assert all(score == 0 for score, _ in wrong.values()), wrong
    feedback = (course / "feedback" / "wrong" / ASSIGNMENT / f"{WRONG_LESSON}.html").read_text()
    assert "ExerciseFailed" in feedback and "dgamma is off by a constant factor 2" in feedback


def test_a_shadowed_and_patched_checker_scores_nothing(course):
    gamed = grades(course, "gamer", GAMED_LESSON)
    assert gamed and all(score == 0 for score, _ in gamed.values()), gamed
    feedback = (course / "feedback" / "gamer" / ASSIGNMENT / f"{GAMED_LESSON}.html").read_text()
    assert "ExerciseTampered" in feedback and "check_backward was replaced" in feedback
