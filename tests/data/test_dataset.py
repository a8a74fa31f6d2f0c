"""MultiTaskDataset: validation, subset, split, select_tasks, model config."""

import numpy as np
import pytest

from tinymtt.config import ModelConfig, TaskSpec
from tinymtt.data import MultiTaskDataset, make_sequence_suite


def tiny(size=10, **overrides):
    """size examples of length 2..3; task 'id' (sequence) holds each example's index."""
    rng = np.random.default_rng(0)
    fields = dict(inputs=rng.integers(0, 4, (size, 3)), lengths=np.arange(size) % 2 + 2,
                  targets={"id": np.arange(size), "value": rng.standard_normal((size, 2)).astype(np.float32)},
                  tasks=[TaskSpec("id", "sequence", max(size, 2)), TaskSpec("value", "regression", 2)],
                  vocab_size=4, name="tiny")
    fields.update(overrides)
    return MultiTaskDataset(**fields)


def test_defaults_and_sizes():
    data = tiny()
    assert len(data) == 10 and data.max_len == 3 and data.task_names == ["id", "value"]
    assert all(p.dtype == bool and p.all() for p in data.present.values())      # present: all by default
    assert data.task_counts() == {"id": 10, "value": 10}
    assert "tiny" in repr(data) and "N=10" in repr(data)


def test_subset_copies_rows():
    data = tiny()
    part = data.subset([7, 2, 2])
    np.testing.assert_array_equal(part.targets["id"], [7, 2, 2])
    np.testing.assert_array_equal(part.inputs, data.inputs[[7, 2, 2]])
    part.targets["value"][0] = 5.0
    assert data.targets["value"][7, 0] != 5.0                                  # a copy, not a view
    mask = np.zeros(10, dtype=bool)
    mask[[1, 4]] = True
    np.testing.assert_array_equal(data.subset(mask).targets["id"], [1, 4])
    with pytest.raises(IndexError, match="indices"):
        data.subset([0, 10])
    with pytest.raises(IndexError, match="indices"):
        data.subset([-1])
    with pytest.raises(TypeError, match="indices"):
        data.subset([0.5])


@pytest.mark.parametrize("size, fractions", [(100, (0.8, 0.1, 0.1)), (7, (0.8, 0.1, 0.1)), (50, (0.5, 0.5)),
                                             (10, (1.0,)), (12, (0.0, 0.25, 0.75))])
def test_split_is_disjoint_complete_and_seeded(size, fractions):
    data = tiny(size)
    parts = data.split(fractions, seed=3)
    assert len(parts) == len(fractions)
    ids = np.concatenate([p.targets["id"] for p in parts])
    np.testing.assert_array_equal(np.sort(ids), np.arange(size))               # each example exactly once
    assert [len(p) for p in parts] == list(np.diff(np.rint(np.cumsum((0,) + fractions) * size)).astype(int))
    again = data.split(fractions, seed=3)
    for a, b in zip(parts, again):
        np.testing.assert_array_equal(a.targets["id"], b.targets["id"])
    if size >= 50:
        other = data.split(fractions, seed=4)
        assert not np.array_equal(parts[0].targets["id"], other[0].targets["id"])


def test_split_bad_arguments():
    data = tiny()
    for fractions in [(0.5, 0.4), (1.2, -0.2), (), "0.8", (0.5, "0.5")]:
        with pytest.raises(ValueError, match="fractions"):
            data.split(fractions)
    with pytest.raises(ValueError, match="seed"):
        data.split(seed=-1)


def test_select_tasks_and_model_config():
    data = make_sequence_suite(20, seed=0)
    chosen = data.select_tasks(["max", "sort"])
    assert chosen.task_names == ["max", "sort"] and set(chosen.targets) == {"max", "sort"}
    np.testing.assert_array_equal(chosen.inputs, data.inputs)
    kwargs = chosen.model_config_kwargs()
    assert kwargs == {"tasks": [TaskSpec("max", "sequence", 10), TaskSpec("sort", "token", 10)],
                      "max_len": 8, "vocab_size": 11}
    assert ModelConfig(**kwargs, d_model=8, num_heads=2).num_tasks == 2
    for names in (["max", "median"], [], ["max", "max"]):
        with pytest.raises(ValueError, match="names"):
            data.select_tasks(names)


def test_partial_present_and_metadata_follow_rows():
    present = {"id": np.arange(10) < 3}
    data = tiny(present=present, metadata={"tag": np.arange(10) * 10})
    assert data.task_counts() == {"id": 3, "value": 10}
    part = data.subset([2, 5])
    np.testing.assert_array_equal(part.present["id"], [True, False])
    np.testing.assert_array_equal(part.metadata["tag"], [20, 50])


@pytest.mark.parametrize("overrides, match", [
    ({"inputs": [[0, 1, 2]] * 10}, "inputs"),                                   # not an array
    ({"inputs": np.zeros((10, 3))}, "inputs"),                                  # float ids
    ({"inputs": np.full((10, 3), 4)}, "vocab_size"),                            # id out of range
    ({"lengths": np.zeros(10, dtype=int)}, "lengths"),
    ({"lengths": np.full(10, 4)}, "lengths"),
    ({"lengths": np.full(9, 2)}, "lengths"),
    ({"targets": {"id": np.arange(10)}}, "targets"),                            # a task without a target
    ({"targets": {"id": np.arange(10.0), "value": np.zeros((10, 2), np.float32)}}, "targets"),
    ({"targets": {"id": np.arange(10), "value": np.zeros((10, 3), np.float32)}}, "targets"),
    ({"present": {"id": np.ones(10)}}, "present"),
    ({"present": {"colour": np.ones(10, bool)}}, "present"),
    ({"vocab_size": None}, "vocab_size"),
    ({"input_dim": 3}, "vocab_size"),
    ({"pad_id": 4}, "pad_id"),
    ({"tasks": []}, "tasks"),
    ({"metadata": {"tag": np.arange(9)}}, "metadata"),
])
def test_bad_fields(overrides, match):
    with pytest.raises((TypeError, ValueError), match=match):
        tiny(**overrides)


def test_continuous_inputs():
    data = MultiTaskDataset(inputs=np.zeros((4, 2, 3), np.float32), lengths=np.full(4, 2),
                            targets={"y": np.zeros(4, int)}, tasks=[TaskSpec("y", "sequence", 2)], input_dim=3)
    assert data.model_config_kwargs() == {"tasks": [TaskSpec("y", "sequence", 2)], "max_len": 2, "input_dim": 3}
    with pytest.raises(ValueError, match="input_dim"):
        MultiTaskDataset(inputs=np.zeros((4, 2, 3), np.float32), lengths=np.full(4, 2),
                         targets={"y": np.zeros(4, int)}, tasks=[TaskSpec("y", "sequence", 2)], input_dim=5)
