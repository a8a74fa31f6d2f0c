"""The grouping search: every partition once, and the best split per budget equals a brute force."""

import itertools

import numpy as np
import pytest

from tinymtt.mtl.grouping import (
    affinity_group_value,
    best_partitions,
    groupings,
    partitions,
)

BELL = [1, 1, 2, 5, 15, 52, 203, 877, 4140]


@pytest.mark.parametrize("count", range(1, 9))
def test_partitions_are_the_bell_number_and_distinct(count):
    found = list(partitions(count))
    assert len(found) == BELL[count]
    canonical = {tuple(sorted(group for group in p)) for p in found}
    assert len(canonical) == len(found)
    assert all(sorted(i for group in p for i in group) == list(range(count)) for p in found)


def brute_force(affinity, budget):
    """Label every task with a group number (T^T labelings), score each directly, keep the best with <= budget groups."""
    count = len(affinity)
    best = -np.inf
    for labels in itertools.product(range(count), repeat=count):
        if len(set(labels)) > budget:
            continue
        score = 0.0
        for j in range(count):
            mates = [i for i in range(count) if labels[i] == labels[j] and i != j]
            if mates:
                score += sum(affinity[i][j] for i in mates) / len(mates)
        best = max(best, score)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_the_search_equals_brute_force_on_random_matrices(seed):
    rng = np.random.default_rng(seed)
    count = 3 + seed % 3                                   # 3, 4 and 5 tasks
    affinity = rng.normal(size=(count, count)) * rng.choice([0.1, 1.0], size=(count, count))
    results = best_partitions(count, affinity_group_value(affinity))
    assert [budget for budget, _, _ in results] == list(range(1, count + 1))
    for budget, partition, score in results:
        assert len(partition) <= budget
        assert score == pytest.approx(brute_force(affinity, budget), abs=1e-12)
        assert score == pytest.approx(sum(affinity_group_value(affinity)(g) for g in partition), abs=1e-12)
    scores = [score for _, _, score in results]
    assert scores == sorted(scores)                        # a bigger budget is never worse
    assert scores[-1] >= 0                                  # every task alone scores 0


def test_hand_made_matrix():
    # a and b help each other a lot, c hurts both and is hurt: {a, b} + {c} from budget 2 on
    affinity = np.array([[0.0, 0.3, -0.2], [0.4, 0.0, -0.1], [-0.5, -0.3, 0.0]])
    found = groupings(affinity, ["a", "b", "c"])
    assert found[0] == {"budget": 1, "groups": [["a", "b", "c"]],
                        "score": pytest.approx(((0.4 - 0.5) + (0.3 - 0.3) + (-0.2 - 0.1)) / 2)}
    assert found[1]["groups"] == [["a", "b"], ["c"]] and found[1]["score"] == pytest.approx(0.7)
    assert found[2]["groups"] == [["a", "b"], ["c"]]      # a tie with more groups: the cheaper one stays


def test_a_group_of_one_scores_zero_and_the_diagonal_is_ignored():
    affinity = np.diag([5.0, 7.0])
    value = affinity_group_value(affinity)
    assert value((0,)) == 0.0 and value((0, 1)) == 0.0


@pytest.mark.parametrize("bad, words", [(np.ones((2, 3)), "square"), ([[1.0, np.nan], [0.0, 1.0]], "finite"),
                                        (np.zeros((0, 0)), "square")])
def test_bad_matrices_are_refused_with_the_reason(bad, words):
    with pytest.raises(ValueError, match=words):
        groupings(bad)


def test_too_many_tasks_for_an_exhaustive_search():
    with pytest.raises(ValueError, match="exhaustive"):
        best_partitions(11, lambda group: 0.0)
