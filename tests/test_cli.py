"""The `tinymtt` command: a tiny end-to-end run, eval, demo, resume, and bad input."""

import json
import subprocess
import sys

import pytest

from tinymtt.cli import main

TINY = ["--examples", "200", "--d-model", "16", "--heads", "2", "--layers", "1", "--batch-size", "16",
        "--no-progress"]


def test_train_eval_demo_and_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--steps", "8", "--out", str(run), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "token_accuracy" in printed and "r2" in printed
    for name in ("config.json", "history.jsonl", "metrics.json", "model.npz", "trainer.npz"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"sort", "reverse", "max", "mean"}
    assert main(["eval", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == metrics
    assert main(["demo", str(run), "--examples", "2"]) == 0
    shown = capsys.readouterr().out
    assert shown.count("input") == 2 and "predicted" in shown and "target" in shown
    # a second train into the same folder is refused; --resume continues (already at its last step)
    assert main(["train", "--steps", "8", "--out", str(run), *TINY]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 0
    assert "resuming" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "--steps", "0"], "--steps: must be > 0"),
    (["train", "--steps", "ten"], "expected an integer"),
    (["train", "--mode", "mixed"], "invalid choice: 'mixed'"),
    (["train", "--weights", "sort"], "task=weight pairs"),
    (["train", "--resume"], "--resume needs --out"),
    (["eval", "/nonexistent/run"], "does not exist"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_bad_input_is_one_clear_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1


def test_unknown_task_weight_is_named(tmp_path, capsys):
    assert main(["train", "--weights", "colour=1", "--out", str(tmp_path / "r"), "--steps", "2", *TINY]) == 2
    assert "colour" in capsys.readouterr().err
    assert not (tmp_path / "r" / "config.json").exists()


def test_eval_of_a_folder_without_a_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a tinymtt run folder" in capsys.readouterr().err


def test_python_dash_m_and_exit_code():
    done = subprocess.run([sys.executable, "-m", "tinymtt", "train", "--steps", "-1"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "--steps" in done.stderr


def test_exercises_writes_student_copies(tmp_path, capsys):
    assert main(["exercises", str(tmp_path / "student")]) == 0
    copies = sorted((tmp_path / "student").glob("*.ipynb"))
    assert len(copies) >= 11
    assert all("### BEGIN SOLUTION" not in path.read_text() for path in copies)
    assert "exercise(s) stubbed" in capsys.readouterr().out


def test_exercises_needs_lessons(tmp_path, capsys):
    assert main(["exercises", str(tmp_path / "out"), "--lessons", str(tmp_path)]) == 2
    assert "no lesson notebooks" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["bench", "compare", "transfer", "figures"])
def test_self_parsing_commands_reject_bad_options(command, capsys):
    assert main([command, "--no-such-option"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
