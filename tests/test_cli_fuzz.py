"""Property-based: any command line exits 0, 1 or 2 and never prints a traceback (issue 11)."""

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st

from tinymtt.cli import main

VALUES = st.sampled_from(["", "0", "-1", "1", "2", "1e9", "nan", "inf", "-inf", "x", "sort=-1", "sort=0",
                          "a=b", "=", ",", "sort", "sequences", "digits", "joint", "cagrad", "1.5", "/", "no/such"])
TRAIN_OPTIONS = ["--data", "--tasks", "--examples", "--mode", "--d-model", "--heads", "--layers", "--d-ff",
                 "--dropout", "--task-hidden", "--steps", "--batch-size", "--lr", "--weights", "--strategy",
                 "--strategy-option", "--sampling", "--seed", "--bogus"]
FLAGS = ["--resume", "--force", "--log-conflict", "--json", "--help"]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(command=st.sampled_from(["train", "eval", "demo", "exercises", "figures", "compare", "transfer", "nonsense"]),
       options=st.lists(st.tuples(st.sampled_from(TRAIN_OPTIONS + FLAGS), VALUES), max_size=3))
def test_any_command_line_is_an_exit_code_and_no_traceback(tmp_path_factory, command, options, capsys):
    folder = tmp_path_factory.mktemp("fuzz")
    argv = [command]
    if command in ("eval", "demo", "exercises"):
        argv.append(str(folder / "run"))
    for name, value in options:
        argv += [name] if name in FLAGS else [name, value]
    if command == "train":                 # cheap: a few steps of a tiny model, unless the options say otherwise
        argv = ["train", "--steps", "2", "--examples", "100", "--d-model", "8", "--heads", "1", "--layers", "1",
                "--no-progress", "--out", str(folder / "run")] + argv[1:]
    if command in ("figures", "compare", "transfer"):
        argv = [a for a in argv if a != "--help"] + ["--help"]         # their real work is minutes long
    try:
        code = main(argv)
    except SystemExit as exit:             # --help
        code = exit.code
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in out + err, argv
    if code == 2:
        assert len(err.strip().splitlines()) == 1, (argv, err)
