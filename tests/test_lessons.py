"""Every lesson runs top to bottom; every exercise copy stops at its check cell.

Notebooks run with TINYMTT_QUICK=1 (lessons shorten their training cells),
in a temporary working folder, on a fresh kernel each. The time limit is per
cell (a hung cell fails the test instead of hanging CI).
"""

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the lesson tests need the test extra: pip install -e '.[test]'")
nbclient = pytest.importorskip("nbclient", reason="the lesson tests need the test extra: pip install -e '.[test]'")
pytest.importorskip("ipykernel", reason="the lesson tests need the test extra: pip install -e '.[test]'")

from tinymtt.commands.exercises import make_student_copy  # noqa: E402
from tinymtt.exercises import BEGIN  # noqa: E402

from helpers import missing_lesson_extra

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT = 300
CHECK_CALLS = ("check_exercise(", "check_equal(")


@pytest.fixture(autouse=True)
def quick_lessons(monkeypatch):
    monkeypatch.setenv("TINYMTT_QUICK", "1")      # the kernel inherits this environment


def execute(notebook, workdir):
    """Run a notebook (in place: outputs land in ``notebook``) with ``workdir`` as its folder."""
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()
    return notebook


def skip_without_its_extra(path):
    reason = missing_lesson_extra(path.stem)
    if reason:
        pytest.skip(reason)


def has_exercises(path):
    notebook = json.loads(path.read_text())
    return any(BEGIN in "".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code")


def test_there_are_lessons():
    assert len(NOTEBOOKS) >= 11, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_is_committed_without_outputs(path):
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, \
                f"{path.name}: strip the outputs before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_runs_top_to_bottom(path, tmp_path):
    skip_without_its_extra(path)
    execute(nbformat.read(str(path), as_version=4), tmp_path)


EXERCISE_NOTEBOOKS = [p for p in NOTEBOOKS if has_exercises(p)]


def test_most_lessons_have_exercises():
    assert len(EXERCISE_NOTEBOOKS) >= 6, [p.name for p in EXERCISE_NOTEBOOKS]


@pytest.mark.parametrize("path", EXERCISE_NOTEBOOKS, ids=lambda p: p.stem)
def test_exercise_copy_stops_at_its_check_cell(path, tmp_path):
    skip_without_its_extra(path)
    copy = tmp_path / path.name
    assert make_student_copy(path, copy) >= 1
    assert BEGIN not in copy.read_text()
    notebook = nbformat.read(str(copy), as_version=4)
    with pytest.raises(nbclient.exceptions.CellExecutionError) as caught:
        execute(notebook, tmp_path)
    error = caught.value
    assert error.ename == "ExerciseIncomplete", f"stopped with {error.ename}: {error.evalue}"
    # the cell that stopped is a check cell, not the exercise cell itself
    failed = [c for c in notebook.cells if c.cell_type == "code" and
              any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert failed and any(call in failed[0].source for call in CHECK_CALLS), failed[0].source if failed else None


def test_lesson_12_catches_a_planted_wrong_answer_with_its_hint(tmp_path):
    path = LESSONS / "12_when_sharing_helps.ipynb"
    skip_without_its_extra(path)
    notebook = nbformat.read(str(path), as_version=4)
    right = "difference.std(ddof=1)"
    (cell,) = [c for c in notebook.cells if right in c.source and BEGIN in c.source]
    cell.source = cell.source.replace(right, "difference.std()")          # divides by n, not n - 1
    with pytest.raises(nbclient.exceptions.CellExecutionError) as caught:
        execute(notebook, tmp_path)
    assert caught.value.ename == "ExerciseFailed"
    assert "hint: the spread of a few seeds is the sample standard deviation" in caught.value.evalue
