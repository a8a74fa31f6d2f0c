"""tinymtt train/eval/exercises: resume options, Ctrl-C, used folders, file errors (issue 11)."""

import json
import os
import signal
import subprocess
import sys

import pytest

from tinymtt.cli import main
from tinymtt.train import Trainer

TINY = ["train", "--examples", "200", "--d-model", "8", "--heads", "1", "--layers", "1", "--no-progress"]


def steps_logged(run):
    return [json.loads(line)["step"] for line in (run / "history.jsonl").read_text().splitlines()]


def test_resume_steps_extends_the_run_and_lr_is_applied(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(TINY + ["--steps", "8", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--steps", "12", "--lr", "0.01", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "resume: steps 8 -> 12" in out and "resume: lr 0.003 -> 0.01" in out
    assert "after 12 steps" in out
    config = json.loads((run / "config.json").read_text())["train"]
    assert config["steps"] == 12 and config["lr"] == 0.01
    assert max(steps_logged(run)) == 12


def test_resume_refuses_an_option_that_defines_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(TINY + ["--steps", "4", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--mode", "joint"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--mode" in err and "'conditioned'" in err and "'joint'" in err and len(err.splitlines()) == 1
    assert main(["train", "--resume", "--out", str(run), "--d-model", "8"]) == 0     # the same value is fine


def test_resumed_schedule_is_replanned_for_the_new_steps(tmp_path):
    """A 4-step run extended to 8 continues with the learning rates of an 8-step run (README: --resume)."""
    short, long = tmp_path / "short", tmp_path / "long"
    assert main(TINY + ["--steps", "4", "--out", str(short)]) == 0
    assert main(["train", "--resume", "--out", str(short), "--steps", "8", "--no-progress"]) == 0
    assert main(TINY + ["--steps", "8", "--out", str(long)]) == 0
    lr = lambda run: [json.loads(l)["lr"] for l in (run / "history.jsonl").read_text().splitlines()
                      if '"lr"' in l and json.loads(l)["step"] > 4]
    assert lr(short) == pytest.approx(lr(long))


def test_a_new_run_into_a_used_folder_is_refused_unless_force(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.jsonl").write_text('{"step": 450, "loss": 1.0}\n')        # a run stopped before its checkpoint
    assert main(TINY + ["--steps", "4", "--out", str(run)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(TINY + ["--steps", "4", "--out", str(run), "--force"]) == 0
    assert steps_logged(run)[0] != 450


@pytest.mark.parametrize("argv", [["exercises", "{f}"], ["figures", "--out", "{f}"],
                                  ["compare", "--out", "{f}/x.json"], TINY + ["--out", "{f}"]])
def test_an_output_path_that_is_a_file_is_one_line(argv, tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("mine")
    assert main([a.replace("{f}", str(file)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(file) in err and "Traceback" not in err
    assert file.read_text() == "mine"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_an_unwritable_out_is_found_before_training(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(TINY + ["--out", str(locked / "run")]) == 2
        assert "cannot write" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_eval_of_a_file_says_it_is_a_file(tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("")
    assert main(["eval", str(file)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_exercises_refuses_a_folder_with_a_students_work(tmp_path, capsys):
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "01_ops.ipynb").write_text("my answers")
    assert main(["exercises", str(folder)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (folder / "01_ops.ipynb").read_text() == "my answers"


class CtrlCAt:
    """Sends this process a SIGINT at one step, as Ctrl-C would."""

    def __init__(self, step):
        self.step = step

    def after_backward(self, trainer, step):
        if step.number == self.step:
            signal.raise_signal(signal.SIGINT)

    def after_step(self, trainer, step):
        pass


def test_ctrl_c_checkpoints_the_last_step_and_exits_130(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    original = Trainer.__init__
    monkeypatch.setattr(Trainer, "__init__", lambda self, *a, **k: original(self, *a, **{**k, "callbacks": [CtrlCAt(3)]}))
    assert main(TINY + ["--steps", "40", "--out", str(run)]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and "step 3 of 40" in err and "Traceback" not in err
    monkeypatch.undo()
    assert main(["eval", str(run)]) == 0
    assert main(["demo", str(run), "--examples", "1"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 0
    assert "at step 3 of 40" in capsys.readouterr().out


def test_ctrl_c_of_a_real_process(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, "-m", "tinymtt", *TINY, "--steps", "100000", "--out", str(run)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for _ in range(600):                                  # wait for the step-0 checkpoint, then a little
            if (run / "trainer.npz").exists():
                break
            process.wait(0.1) if process.poll() is not None else __import__("time").sleep(0.1)
        __import__("time").sleep(1.0)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    assert main(["eval", str(run)]) == 0


@pytest.mark.parametrize("option, value, message", [
    ("--weights", "sort=-1", ">= 0"), ("--weights", "sort=0,max=0,mean=0,reverse=0", "at least one task weight"),
    ("--tasks", "", "--tasks"), ("--tasks", ",", "--tasks"), ("--examples", "1", "too few"),
    ("--data", "digits", "--examples applies to --data sequences and words only")])
def test_values_that_would_train_the_wrong_thing_are_refused(option, value, message, tmp_path, capsys):
    assert main(TINY + ["--steps", "2", "--out", str(tmp_path / "run"), option, value]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_eval_into_a_closed_pipe_is_quiet(tmp_path):
    run = tmp_path / "run"
    assert main(TINY + ["--steps", "2", "--out", str(run)]) == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    shell = f"{sys.executable} -m tinymtt eval {run} | head -1"
    result = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
    assert result.stdout.startswith("task")


def test_a_bad_integer_reads_an_integer(tmp_path, capsys):
    assert main(TINY + ["--steps", "x", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "expected an integer, got 'x'" in err and "a int" not in err


def test_a_refused_resume_says_nothing_changed(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(TINY + ["--steps", "4", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--steps", "2", "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert "resume: steps" not in out and "behind the run" in err
    assert main(["train", "--resume", "--out", str(run), "--tasks", "sort"]) == 2
    assert "the run has every task, given ['sort']" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(run), "--tasks", " ", "--no-progress"]) == 2


def test_a_read_only_out_is_found_before_training(tmp_path, capsys, monkeypatch):
    """As root, chmod does not stop a write: a read-only file system is simulated at the probe file."""
    import errno
    import tinymtt.commands.common as common

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr(common.tempfile, "TemporaryFile", read_only)
    monkeypatch.setattr(Trainer, "fit", lambda self: pytest.fail("trained before the --out check"))
    assert main(TINY + ["--steps", "2", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "cannot write there" in err and "Read-only" in err and len(err.strip().splitlines()) == 1
