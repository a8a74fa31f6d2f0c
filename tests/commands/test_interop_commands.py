"""tinymtt export RUN OUT.safetensors and tinymtt import MODEL.safetensors RUN: the round trip, and the refusals.

Skips (with the reason) when torch or safetensors is not installed (torch only for the same skip as the
other interop tests: the commands themselves need safetensors alone).
"""

import json

import numpy as np
import pytest

from tinymtt import checkpoint
from tinymtt.cli import main

from helpers import interop_or_skip

TINY = ["train", "--examples", "200", "--d-model", "8", "--heads", "2", "--layers", "1", "--no-progress",
        "--steps", "3", "--mode", "joint", "--task-module", "lora"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    interop_or_skip()
    run = tmp_path_factory.mktemp("interop") / "run"
    assert main(TINY + ["--out", str(run)]) == 0
    return run


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_export_then_import_gives_the_same_run(trained, tmp_path, capsys):
    exported, back = tmp_path / "model.safetensors", tmp_path / "back"
    assert main(["export", str(trained), str(exported)]) == 0
    assert main(["import", str(exported), str(back)]) == 0
    original, imported = checkpoint.load(trained / "model.npz"), checkpoint.load(back / "model.npz")
    for name, value in original.parameters().items():
        assert np.array_equal(imported.parameters()[name], value) and imported.parameters()[name].dtype == value.dtype
    first, second = (json.loads((run / "config.json").read_text()) for run in (trained, back))
    assert first == second
    assert checkpoint.load_meta(back / "model.npz")["extra"]["step"] == 3
    capsys.readouterr()
    assert main(["eval", str(trained), "--json"]) == 0
    expected = capsys.readouterr().out
    assert main(["eval", str(back), "--json"]) == 0
    assert capsys.readouterr().out == expected


def test_export_refuses_to_overwrite_without_force(trained, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    out.write_bytes(b"keep me")
    assert main(["export", str(trained), str(out)]) == 2
    assert "OUT" in one_line_error(capsys) and out.read_bytes() == b"keep me"
    assert main(["export", str(trained), str(out), "--force"]) == 0
    assert out.read_bytes() != b"keep me"
    assert main(["export", str(tmp_path / "no-run"), str(tmp_path / "x.safetensors")]) == 2
    assert "does not exist" in one_line_error(capsys)


def test_import_refuses_bad_files_and_used_folders(trained, tmp_path, capsys):
    exported = tmp_path / "model.safetensors"
    assert main(["export", str(trained), str(exported)]) == 0
    capsys.readouterr()
    assert main(["import", str(tmp_path / "missing.safetensors"), str(tmp_path / "a")]) == 2
    assert "MODEL" in (err := one_line_error(capsys)) and "no file at" in err
    assert main(["import", str(trained / "model.npz"), str(tmp_path / "a")]) == 2
    assert "not a readable safetensors file" in one_line_error(capsys)
    from safetensors.numpy import save_file
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": np.zeros(3, np.float32)}, str(foreign))
    assert main(["import", str(foreign), str(tmp_path / "a")]) == 2
    assert "not a tinymtt export" in one_line_error(capsys)
    assert not (tmp_path / "a").exists()                                    # nothing written for a refused file
    before = (trained / "config.json").read_text()
    assert main(["import", str(exported), str(trained)]) == 2               # RUN holds a run
    assert "--force" in one_line_error(capsys) and (trained / "config.json").read_text() == before
    other = tmp_path / "other"
    assert main(["import", str(exported), str(other)]) == 0
    assert main(["import", str(exported), str(other), "--force"]) == 0
