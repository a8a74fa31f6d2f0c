"""The conflict suite: the sequence suite's inputs with the tasks built to conflict."""

import numpy as np
import pytest

from tinymtt.data import CONFLICT_TASKS, conflict_suite, load_dataset, make_sequence_suite


def test_conflict_suite_targets():
    data = conflict_suite(50, seed=3, tasks=CONFLICT_TASKS)
    suite = make_sequence_suite(50, seed=3)
    assert np.array_equal(data.inputs, suite.inputs) and data.task_names == list(CONFLICT_TASKS)
    for row in range(50):
        digits = data.inputs[row, :data.lengths[row]]
        assert data.targets["min"][row] == digits.min() and data.targets["max"][row] == digits.max()
        assert data.targets["antimean"][row, 0] == pytest.approx(1 - digits.mean() / 9, abs=1e-6)
        assert data.targets["sort_desc"][row, :len(digits)].tolist() == sorted(digits.tolist(), reverse=True)
        assert (data.targets["sort_desc"][row, len(digits):] == -1).all()
    assert conflict_suite(10).task_names == ["max", "min"]
    with pytest.raises(ValueError, match="tasks"):
        conflict_suite(10, tasks=["max", "median"])


def test_the_conflict_suite_loads_by_name_with_its_default_tasks():
    data = load_dataset("conflict", num_examples=20, seed=1)
    assert data.name == "conflict" and data.task_names == ["max", "min"]
    assert np.array_equal(data.inputs, conflict_suite(20, seed=1).inputs)
