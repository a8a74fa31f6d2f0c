"""tinymtt compare: the Δ% formula, the table and JSON of a quick run, bad options."""

import json

import numpy as np
import pytest

from tinymtt.cli import main
from tinymtt.commands.compare import CompareConfig, baseline_batch, format_table, relative_gain


def test_relative_gain_by_hand():
    # accuracy 0.5 -> 0.8: +60 %; mse 0.04 -> 0.02 (lower is better): +50 %; mean +55 %
    assert relative_gain({"a": 0.8, "b": 0.02}, {"a": 0.5, "b": 0.04}, {"a": False, "b": True}) == pytest.approx(55.0)
    # accuracy 0.9 -> 0.81: −10 %; mse 0.1 -> 0.13: −30 %; mean −20 %
    assert relative_gain({"a": 0.81, "b": 0.13}, {"a": 0.9, "b": 0.1}, {"a": False, "b": True}) == pytest.approx(-20.0)
    assert relative_gain({"a": 0.5}, {"a": 0.5}, {"a": False}) == 0.0
    assert np.isnan(relative_gain({"a": 0.5}, {"a": 0.0}, {"a": False}))     # no relative change from 0


def test_baseline_batch_matches_the_examples_per_task():
    assert baseline_batch(CompareConfig(batch_size=64), 4) == 16
    assert baseline_batch(CompareConfig(batch_size=64, mode="joint"), 4) == 64
    assert baseline_batch(CompareConfig(batch_size=64, baseline_batch=32), 4) == 32


def test_quick_json_run(capsys, tmp_path):
    out = tmp_path / "results.json"
    code = main(["compare", "--quick", "--json", "--data", "conflict", "--strategies", "fixed,pcgrad,cagrad",
                         "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    results = json.loads(captured.out)
    assert json.loads(out.read_text()) == results
    assert [t["name"] for t in results["tasks"]] == ["max", "min"]
    assert all(t["metric"] == "accuracy" and not t["lower_is_better"] for t in results["tasks"])
    assert list(results["strategies"]) == ["fixed", "pcgrad", "cagrad"]
    base = {name: m["mean"] for name, m in results["baseline"]["metrics"].items()}
    lower = {t["name"]: t["lower_is_better"] for t in results["tasks"]}
    for name, entry in results["strategies"].items():
        assert entry["ms_per_step"] > 0
        for task, summary in entry["metrics"].items():
            assert len(summary["values"]) == 2 and summary["mean"] == pytest.approx(np.mean(summary["values"]))
            assert summary["std"] == pytest.approx(np.std(summary["values"], ddof=1))
        means = {task: summary["mean"] for task, summary in entry["metrics"].items()}
        assert entry["delta"]["value"] == pytest.approx(relative_gain(means, base, lower))
        assert len(entry["delta"]["per_seed"]) == 2
        assert entry["mean_cosine"] is not None and -1 <= entry["mean_cosine"]["cosine"] <= 1
        assert entry["conflict"][0]["tasks"] == ["max", "min"]
    table = format_table(results | {"seconds": 1.0})
    assert "single-task" in table and "cagrad" in table and "Δ%" in table


def test_quick_table_run_with_a_regression_task(capsys):
    code = main(["compare", "--quick", "--seeds", "1", "--tasks", "max,mean", "--strategies", "fixed,mgda"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert any(line.startswith("mgda") for line in lines) and any(line.startswith("single-task") for line in lines)
    assert "mean mse ↓" in captured.out and "max accuracy ↑" in captured.out
    assert "[1/" in captured.err                       # progress goes to stderr


def test_no_baselines_no_delta(capsys):
    code = main(["compare", "--quick", "--json", "--seeds", "1", "--tasks", "max,min", "--data", "conflict",
                         "--strategies", "fixed", "--no-baselines", "--probe-every", "0"])
    results = json.loads(capsys.readouterr().out)
    assert code == 0 and results["baseline"] is None
    entry = results["strategies"]["fixed"]
    assert "delta" not in entry and entry["mean_cosine"] is None
    assert "0 (baseline)" not in format_table(results)


@pytest.mark.parametrize("argv, word", [(["--strategies", "fixed,adam"], "strategies"),
                                        (["--seeds", "0"], "seeds"),
                                        (["--data", "imagenet"], "data"),
                                        (["--data", "conflict", "--tasks", "max,median"], "tasks"),
                                        (["--probe-every", "-1"], "probe-every"),
                                        (["--lr", "nan"], "lr")])
def test_bad_options_exit_2_with_a_named_message(argv, word, capsys):
    assert main(["compare", "--quick"] + argv) == 2
    assert word in capsys.readouterr().err
