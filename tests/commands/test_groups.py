"""tinymtt groups: the JSON of a quick run, the validation's bookkeeping, rank correlation, bad options."""

import json

import numpy as np
import pytest

from tinymtt.cli import main
from tinymtt.commands.groups import rank_correlation


def test_rank_correlation_by_hand():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([1, 2, 3], [1, 100, 2]) == pytest.approx(0.5)        # ranks 0 1 2 vs 0 2 1
    # a tie: ranks (0.5, 0.5, 2) against (0, 1, 2) -> Pearson of those ranks
    expected = np.corrcoef([0.5, 0.5, 2.0], [0.0, 1.0, 2.0])[0, 1]
    assert rank_correlation([5, 5, 9], [1, 2, 3]) == pytest.approx(expected)
    assert np.isnan(rank_correlation([1, 1, 1], [1, 2, 3]))


def test_quick_json_has_the_affinity_and_a_grouping_for_every_budget(capsys, tmp_path):
    figure = tmp_path / "groups.png"
    code = main(["groups", "--quick", "--json", "--tasks", "sort,max,mean", "--figure", str(figure)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    results = json.loads(captured.out)
    assert results["tasks"] == ["sort", "max", "mean"]
    affinity = np.array(results["affinity"], dtype=float)
    assert affinity.shape == (3, 3) and np.all(np.isfinite(affinity))
    assert [g["budget"] for g in results["groupings"]] == [1, 2, 3]
    assert results["groupings"][0]["groups"] == [["sort", "max", "mean"]]
    for grouping in results["groupings"]:
        members = sorted(name for group in grouping["groups"] for name in group)
        assert members == sorted(results["tasks"]) and len(grouping["groups"]) <= grouping["budget"]
    scores = [g["score"] for g in results["groupings"]]
    assert scores == sorted(scores)
    assert figure.exists()          # matplotlib is in the test extra


def test_validate_trains_every_subset_and_totals_add_up(capsys):
    code = main(["groups", "--quick", "--json", "--validate", "--tasks", "max,mean"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    check = json.loads(captured.out)["validation"]
    assert sorted(check["subsets"]) == ["max", "max+mean", "mean"]
    assert check["gains"]["max"] == {"max": 0.0} and check["gains"]["mean"] == {"mean": 0.0}
    pair = check["gains"]["max+mean"]
    assert np.array(check["pairwise_gain"], dtype=float)[1, 0] == pytest.approx(pair["max"])   # max beside mean
    one, two = check["budgets"]
    assert one["chosen"] == [["max", "mean"]] and one["chosen_total"] == pytest.approx(pair["max"] + pair["mean"])
    assert one["all_together"] == pytest.approx(one["chosen_total"])
    assert two["best_total"] == pytest.approx(max(0.0, pair["max"] + pair["mean"]))
    assert two["best_total"] >= two["chosen_total"] and two["best_total"] >= two["all_alone"] == 0.0
    assert set(check["rank_correlation"]) == {"lookahead", "cosine", "attention"}


@pytest.mark.parametrize("argv, words", [
    (["groups", "--steps", "0"], "--steps must be >= 1"),
    (["groups", "--tasks", "sort,nope"], "nope"),
    (["groups", "--tasks", "sort", "--quick"], "at least 2 tasks"),
    (["groups", "--data", "moon"], "invalid choice"),
])
def test_bad_options_are_one_line_and_exit_2(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err


def test_train_log_affinity_every_n_steps(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--steps", "30", "--d-model", "16", "--examples", "400", "--log-affinity",
                 "--log-every", "10", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    lines = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    logged = [line for line in lines if "affinity" in line]
    assert [line["step"] for line in logged] == [10, 20, 30]
    assert np.array(logged[0]["affinity"], dtype=float).shape == (4, 4)
    assert (out / "affinity.png").exists()
