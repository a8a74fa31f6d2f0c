"""The sequence suite: targets by hand and against a per-example reference, padding, seeding."""

import numpy as np
import pytest

from tinymtt.config import ModelConfig
from tinymtt.data import SEQUENCE_TASKS, make_sequence_suite, sequence_targets


def test_targets_by_hand():
    # rows: [3, 1, 2] (length 3), [7, 7, 0, 5] (length 4), [4] (length 1); padding holds junk
    inputs = np.array([[3, 1, 2, 9], [7, 7, 0, 5], [4, 8, 8, 8]])
    lengths = np.array([3, 4, 1])
    t = sequence_targets(inputs, lengths, num_digits=10)
    np.testing.assert_array_equal(t["sort"], [[1, 2, 3, -1], [0, 5, 7, 7], [4, -1, -1, -1]])
    np.testing.assert_array_equal(t["reverse"], [[2, 1, 3, -1], [5, 0, 7, 7], [4, -1, -1, -1]])
    np.testing.assert_array_equal(t["max"], [3, 7, 4])
    np.testing.assert_allclose(t["mean"], [[2 / 9], [19 / 4 / 9], [4 / 9]], rtol=1e-6)
    assert t["mean"].dtype == np.float32 and t["mean"].shape == (3, 1)
    assert t["sort"].dtype == t["reverse"].dtype == t["max"].dtype == np.int64


def test_suite_matches_a_per_example_reference():
    data = make_sequence_suite(300, seed=3, min_len=2, max_len=7, num_digits=5)
    for x, n, sort, rev, top, mean in zip(data.inputs, data.lengths, data.targets["sort"],
                                          data.targets["reverse"], data.targets["max"], data.targets["mean"]):
        digits = list(x[:n])
        assert all(0 <= d < 5 for d in digits) and all(p == 5 for p in x[n:])    # PAD = num_digits
        assert list(sort[:n]) == sorted(digits) and list(rev[:n]) == digits[::-1]
        assert (sort[n:] == -1).all() and (rev[n:] == -1).all()
        assert top == max(digits)
        assert mean[0] == pytest.approx(sum(digits) / n / 4, rel=1e-6)


def test_shapes_lengths_and_metadata():
    data = make_sequence_suite(500, seed=1, min_len=3, max_len=6, num_digits=7)
    assert data.inputs.shape == (500, 6) and data.inputs.dtype == np.int64
    assert data.vocab_size == 8 and data.pad_id == 7 and data.input_dim is None
    assert set(np.unique(data.lengths)) == {3, 4, 5, 6}                    # uniform in [min_len, max_len]
    assert [t.name for t in data.tasks] == list(SEQUENCE_TASKS)
    assert [(t.kind, t.num_outputs) for t in data.tasks] == [("token", 7), ("token", 7), ("sequence", 7),
                                                             ("regression", 1)]
    assert all(p.all() for p in data.present.values())
    assert data.source and "\n" not in data.source
    config = ModelConfig(**data.model_config_kwargs())
    assert config.vocab_size == 8 and config.max_len == 6 and config.task_names == list(SEQUENCE_TASKS)


def test_seeded():
    a, b = make_sequence_suite(200, seed=5), make_sequence_suite(200, seed=5)
    c = make_sequence_suite(200, seed=6)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    for name in SEQUENCE_TASKS:
        np.testing.assert_array_equal(a.targets[name], b.targets[name])
    assert not np.array_equal(a.inputs, c.inputs)


def test_task_choice_keeps_the_inputs():
    full = make_sequence_suite(100, seed=2)
    some = make_sequence_suite(100, seed=2, tasks=["mean", "sort"])
    assert some.task_names == ["mean", "sort"] and set(some.targets) == {"mean", "sort"}
    np.testing.assert_array_equal(full.inputs, some.inputs)
    np.testing.assert_array_equal(full.targets["sort"], some.targets["sort"])


@pytest.mark.parametrize("kwargs, name", [
    ({"num_examples": 0}, "num_examples"), ({"num_examples": 2.5}, "num_examples"),
    ({"num_examples": 5, "seed": -1}, "seed"), ({"num_examples": 5, "min_len": 0}, "min_len"),
    ({"num_examples": 5, "min_len": 6, "max_len": 5}, "max_len"),
    ({"num_examples": 5, "num_digits": 1}, "num_digits"), ({"num_examples": 5, "num_digits": True}, "num_digits"),
    ({"num_examples": 5, "tasks": ["sort", "median"]}, "tasks"), ({"num_examples": 5, "tasks": []}, "tasks"),
])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_sequence_suite(**kwargs)
