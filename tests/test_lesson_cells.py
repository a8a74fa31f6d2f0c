"""Every lesson carries the nbgrader cell metadata a course grades it by (docs/DESIGN.md, "Exercises and grading").

* a cell with a solution region is a solution cell (editable, not graded);
* every other code cell is locked, given code included;
* every exercise is followed by a graded, locked check cell worth points that
  imports its own checker and ends in no bare expression that has a value;
* grade ids, and cell ids, are unique within a lesson.
"""

import ast
import json
from pathlib import Path

import pytest

from tinymtt.exercises import BEGIN, CHECKERS

LESSONS = sorted((Path(__file__).resolve().parents[1] / "lessons").glob("[0-9][0-9]_*.ipynb"))
VALUELESS_CALLS = set(CHECKERS) | {"print"}       # calls that return None: nothing for a grader to read


def code_cells(path):
    cells = json.loads(path.read_text())["cells"]
    return [("".join(cell["source"]), cell.get("metadata", {}).get("nbgrader")) for cell in cells
            if cell["cell_type"] == "code"]


def called(tree):
    return {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}


def imported_checkers(tree):
    return {alias.name for node in tree.body if isinstance(node, ast.ImportFrom) and node.module == "tinymtt.exercises"
            for alias in node.names}


def ends_in_a_value(tree):
    """True when the cell's last statement is an expression a notebook would display."""
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr):
        return False
    call = last.value
    return not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in VALUELESS_CALLS)


def problems(path):
    found, grade_ids, exercise = [], [], None
    for index, (source, meta) in enumerate(code_cells(path)):
        where = f"code cell {index} ({source.strip().splitlines()[0][:50] if source.strip() else 'empty'!r})"
        if not meta or not meta.get("grade_id"):
            found.append(f"{where}: no nbgrader metadata with a grade_id")
            continue
        grade_ids.append(meta["grade_id"])
        tree = ast.parse(source)
        if BEGIN in source:
            if not (meta.get("solution") and not meta.get("grade") and not meta.get("locked")):
                found.append(f"{where}: a solution region outside a solution cell (solution: true, unlocked)")
            if exercise:
                found.append(f"{where}: the exercise before it ({exercise}) has no graded check cell")
            exercise = meta["grade_id"]
            continue
        if meta.get("solution"):
            found.append(f"{where}: a solution cell without a '{BEGIN}' region")
        if not meta.get("locked"):
            found.append(f"{where}: given code must be locked")
        checks = called(tree) & set(CHECKERS)
        if meta.get("grade"):
            if not (isinstance(meta.get("points"), (int, float)) and meta["points"] > 0):
                found.append(f"{where}: a graded cell without points")
            if not checks:
                found.append(f"{where}: a graded cell that calls no checker ({', '.join(CHECKERS)})")
            if not checks <= imported_checkers(tree):
                found.append(f"{where}: a graded cell must import its own checker from tinymtt.exercises")
            if ends_in_a_value(tree):
                found.append(f"{where}: ends in a bare expression; a grader reads a number there as the score")
            exercise = None
        elif checks:
            found.append(f"{where}: calls {sorted(checks)} but is not a graded cell")
    if exercise:
        found.append(f"the last exercise ({exercise}) has no graded check cell")
    duplicates = sorted({grade_id for grade_id in grade_ids if grade_ids.count(grade_id) > 1})
    if duplicates:
        found.append(f"grade ids used twice: {duplicates}")
    return found


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_lesson_cells_carry_their_grading_metadata(path):
    assert problems(path) == []


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_cell_ids_are_unique(path):
    ids = [cell.get("id") for cell in json.loads(path.read_text())["cells"]]
    assert len(set(ids)) == len(ids), sorted({cell_id for cell_id in ids if ids.count(cell_id) > 1})


def test_the_rules_catch_planted_mistakes(tmp_path):
    good = next(path for path in LESSONS if "05_" in path.name)
    notebook = json.loads(good.read_text())
    cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    solution = next(cell for cell in cells if BEGIN in "".join(cell["source"]))
    check = next(cell for cell in cells if cell["metadata"]["nbgrader"]["grade"])
    solution["metadata"] = {}                                         # a solution region in a plain cell
    check["source"] = "".join(check["source"]).replace("from tinymtt.exercises import check_exercise\n", "") + "\n1.0"
    check["metadata"]["nbgrader"]["points"] = 0
    cells[0]["metadata"]["nbgrader"]["locked"] = False
    cells[2]["metadata"]["nbgrader"]["grade_id"] = cells[3]["metadata"]["nbgrader"]["grade_id"]
    planted = tmp_path / good.name
    planted.write_text(json.dumps(notebook))
    found = "\n".join(problems(planted))
    for message in ("no nbgrader metadata", "without points", "import its own checker", "bare expression",
                    "must be locked", "grade ids used twice"):
        assert message in found, (message, found)
