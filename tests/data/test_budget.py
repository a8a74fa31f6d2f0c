"""Label budgets: the main task's labels limited, the auxiliaries untouched, the balanced training set."""

import numpy as np
import pytest

from tinymtt.data import make_sequence_suite
from tinymtt.data.budget import labelled, limit_labels, task_balanced


@pytest.fixture(scope="module")
def data():
    return make_sequence_suite(300, seed=0, tasks=["max", "sort", "mean"])


def test_a_budget_limits_the_main_task_only(data):
    limited = limit_labels(data, "max", 40, seed=2)
    assert limited.task_counts() == {"max": 40, "sort": 300, "mean": 300}
    assert data.task_counts() == {"max": 300, "sort": 300, "mean": 300}          # the original is untouched
    assert np.array_equal(limited.inputs, data.inputs) and np.array_equal(limited.targets["max"], data.targets["max"])
    assert not np.array_equal(limited.present["max"], limit_labels(data, "max", 40, seed=3).present["max"])


def test_with_one_seed_a_smaller_budget_is_inside_a_larger_one(data):
    small, large = (limit_labels(data, "max", b, seed=5).present["max"] for b in (20, 90))
    assert small.sum() == 20 and large.sum() == 90 and not (small & ~large).any()


def test_a_budget_counts_only_examples_that_have_the_task(data):
    limited = limit_labels(data, "max", 50, seed=0)
    again = limit_labels(limited, "max", 50, seed=1)
    assert again.task_counts()["max"] == 50 and not (again.present["max"] & ~limited.present["max"]).any()
    with pytest.raises(ValueError, match="at most 50"):
        limit_labels(limited, "max", 51)
    with pytest.raises(ValueError, match="budget"):
        limit_labels(data, "max", 0)
    with pytest.raises(ValueError, match="task must be one of"):
        limit_labels(data, "min", 5)


def test_the_single_task_set_holds_the_budget_alone(data):
    single = labelled(limit_labels(data, "max", 30, seed=0), "max")
    assert len(single) == 30 and single.task_names == ["max"] and single.task_counts() == {"max": 30}


def test_the_balanced_set_gives_every_task_as_many_rows(data):
    limited = limit_labels(data, "max", 30, seed=0)
    balanced = task_balanced(limited, "max")
    assert len(balanced) == 900 and balanced.task_counts() == {"max": 300, "sort": 300, "mean": 300}
    present = np.stack([balanced.present[name] for name in balanced.task_names], axis=1)
    assert (present.sum(axis=1) == 1).all()                                     # one task per row
    # the main rows are the 30 labelled examples, each 10 times; their targets are the true ones
    kept = {tuple(row) for row in limited.inputs[limited.present["max"]]}
    main_rows = balanced.inputs[balanced.present["max"]]
    assert {tuple(row) for row in main_rows} == kept
    assert np.unique(main_rows, axis=0, return_counts=True)[1].tolist() == [10] * 30
    labels = {tuple(r): t for r, t in zip(limited.inputs, limited.targets["max"])}
    assert all(labels[tuple(r)] == t for r, t in zip(main_rows, balanced.targets["max"][balanced.present["max"]]))
