"""``tinymtt exercises OUT_DIR``: the student copies of the lessons, solutions replaced by stubs.

Instructors mark solutions in a lesson's code cells with nbgrader's markers::

    def softmax_backward(dout, probs):
        ### BEGIN SOLUTION
        return probs * (dout - (dout * probs).sum(axis=-1, keepdims=True))
        ### END SOLUTION

``make_student_copy`` replaces each marked region (markers included) with a
stub at the same indentation::

        # YOUR CODE HERE
        raise NotImplementedError("exercise: ...")

and clears every output. An nbgrader course makes the same release from the
lessons as they are (their cells carry nbgrader's metadata; instructors/ holds
the config); everyone else runs ``tinymtt exercises OUT_DIR``. The check cells
the students then run are tinymtt.exercises.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..exercises import BEGIN, END, STUB
from .common import Command, UsageError, writable_folder


def _stub_source(source):
    """Replace every BEGIN..END region of a cell's source with the stub (same indentation).

    Line for line what nbgrader's ClearSolutions does with instructors/nbgrader_config.py's
    code stub, so both routes hand out the same cells."""
    out, inside = [], False
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if inside:
                raise ValueError(f"nested '{BEGIN}' marker")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out += [f"{indent}# YOUR CODE HERE", f"{indent}{STUB}"]
        elif stripped.startswith(END):
            if not inside:
                raise ValueError(f"'{END}' without '{BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"'{BEGIN}' without '{END}'")
    return "\n".join(out).splitlines(keepends=True)


def _text(source):
    return source if isinstance(source, str) else "".join(source)


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
        source = _text(cell.get("source", ""))
        count = sum(1 for line in source.split("\n") if line.strip().startswith(BEGIN))
        if count:
            try:
                cell["source"] = _stub_source(source)
            except ValueError as error:
                raise ValueError(f"{notebook_path}: {error}") from None
            replaced += count
        cell["outputs"], cell["execution_count"] = [], None
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    return replaced


def default_lessons_dir() -> Path:
    """lessons/ beside the package (a source checkout), else ./lessons."""
    beside = Path(__file__).resolve().parents[2] / "lessons"
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


def add_arguments(parser):
    parser.add_argument("out_dir", help="folder for the student notebooks")
    parser.add_argument("--lessons", default=None, help="folder of the lesson notebooks (default: lessons/)")
    parser.add_argument("--force", action="store_true",
                        help="write into a folder that is not empty (a student notebook of the same name is replaced)")


def run(args) -> int:
    out = Path(args.out_dir)
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise UsageError(f"tinymtt exercises: {out} is not empty, and writing would replace a student's edited "
                         f"notebooks: choose a new folder, or give --force to write into it anyway")
    writable_folder(out, "OUT_DIR")
    written = write_exercises(out, args.lessons)
    for name, regions in written.items():
        print(f"{name}: {regions} exercise(s) stubbed")
    print(f"student copies in {args.out_dir}: hand them out; each check cell says what is wrong until it is right")
    return 0


COMMAND = Command("exercises", "write student copies of the lessons", add_arguments, run)
