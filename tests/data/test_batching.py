"""make_batch and BatchIterator: the model's batch format, task sampling, seeded resume."""

import json

import numpy as np
import pytest

from tinymtt.config import ModelConfig, TaskSpec
from tinymtt.data import BatchIterator, MultiTaskDataset, make_batch, make_sequence_suite, sampling_weights
from tinymtt.model import MultiTaskTransformer

from helpers import host


def indexed(size, present_b=None, seq_len=2):
    """Tasks 'a' (all examples) and 'b' (present_b); 'a' holds each example's index, so batches show their rows."""
    present = None if present_b is None else {"b": present_b}
    return MultiTaskDataset(inputs=np.zeros((size, seq_len), dtype=np.int64), lengths=np.full(size, seq_len),
                            targets={"a": np.arange(size), "b": np.zeros(size, dtype=np.int64)},
                            tasks=[TaskSpec("a", "sequence", max(size, 2)), TaskSpec("b", "sequence", 2)],
                            present=present, vocab_size=2)


def rows(batch):
    return host(batch["targets"]["a"])


# --- make_batch --------------------------------------------------------------------------

def test_make_batch_pads_to_the_longest_in_the_batch():
    data = make_sequence_suite(50, seed=0, min_len=2, max_len=9)
    picks = np.array([i for i in range(50) if data.lengths[i] < 9][:5])
    batch = make_batch(data, picks, "joint")
    longest = int(data.lengths[picks].max())
    inputs, mask = host(batch["inputs"]), host(batch["mask"])
    assert inputs.shape == mask.shape == (5, longest) and longest < 9
    assert inputs.dtype == np.int64 and mask.dtype == bool
    np.testing.assert_array_equal(mask, np.arange(longest) < data.lengths[picks][:, None])
    np.testing.assert_array_equal(inputs, data.inputs[picks, :longest])
    assert (inputs[~mask] == data.pad_id).all()
    sort = host(batch["targets"]["sort"])
    assert sort.shape == (5, longest) and sort.dtype == np.int64 and (sort[~mask] == -1).all()
    assert host(batch["targets"]["max"]).shape == (5,) and host(batch["targets"]["max"]).dtype == np.int64
    mean = host(batch["targets"]["mean"])
    assert mean.shape == (5, 1) and mean.dtype == np.float32
    assert set(batch) == {"inputs", "mask", "targets", "present"}
    assert all(host(p).dtype == bool and host(p).all() for p in batch["present"].values())


def test_make_batch_seq_len_truncates_and_pads():
    data = make_sequence_suite(8, seed=1, min_len=5, max_len=5)
    short = make_batch(data, [0, 1], "joint", seq_len=3)
    assert host(short["mask"]).all() and host(short["inputs"]).shape == (2, 3)
    np.testing.assert_array_equal(host(short["targets"]["reverse"]), data.targets["reverse"][:2, :3])
    long = make_batch(data, [0, 1], "joint", seq_len=7)
    mask = host(long["mask"])
    np.testing.assert_array_equal(mask, np.arange(7) < 5 + np.zeros((2, 1)))
    assert (host(long["inputs"])[:, 5:] == data.pad_id).all()
    assert (host(long["targets"]["sort"])[:, 5:] == -1).all()


def test_make_batch_conditioned_and_absent_targets():
    data = indexed(6, present_b=np.array([True, False, True, False, True, False]))
    data.targets["b"][:] = 7                                      # junk, also where absent
    batch = make_batch(data, [0, 1, 2], "conditioned", task_ids=np.array([1, 0, 0]))
    assert set(batch) == {"inputs", "mask", "targets", "task_ids"}
    ids = host(batch["task_ids"])
    assert ids.dtype == np.int64 and ids.tolist() == [1, 0, 0]
    np.testing.assert_array_equal(host(batch["targets"]["b"]), [7, -1, 7])   # absent -> -1
    with pytest.raises(ValueError, match="task_ids.*example 1.*'b'"):
        make_batch(data, [0, 1], "conditioned", task_ids=np.array([0, 1]))   # example 1 has no 'b'


def test_make_batch_regression_float32_and_absent_nan():
    data = MultiTaskDataset(inputs=np.ones((3, 2, 4)), lengths=np.array([1, 2, 2]),
                            targets={"y": np.array([[1.0], [np.nan], [3.0]])}, tasks=[TaskSpec("y", "regression", 1)],
                            present={"y": np.array([True, False, True])}, input_dim=4)
    batch = make_batch(data, [0, 1, 2], "joint")
    assert host(batch["inputs"]).dtype == np.float32 and host(batch["targets"]["y"]).dtype == np.float32
    np.testing.assert_array_equal(host(batch["targets"]["y"]), [[1.0], [0.0], [3.0]])
    np.testing.assert_array_equal(host(batch["present"]["y"]), [True, False, True])
    assert (host(batch["inputs"])[0, 1] == 0).all()                          # padded position of example 0


@pytest.mark.parametrize("mode", ["conditioned", "joint"])
def test_batches_feed_the_model(mode):
    data = make_sequence_suite(40, seed=0)
    model = MultiTaskTransformer(ModelConfig(**data.model_config_kwargs(), d_model=8, num_heads=2, d_ff=16,
                                             mode=mode))
    batch = next(iter(BatchIterator(data, 16, mode, seed=0)))
    total, per_task, counted = model.loss(batch)
    assert np.isfinite(float(total)) and set(per_task) == set(data.task_names)
    assert all(counted.values())


@pytest.mark.parametrize("kwargs, error, match", [
    ({"indices": []}, ValueError, "indices"),
    ({"indices": [0, 6]}, IndexError, "indices"),
    ({"mode": "both"}, ValueError, "mode"),
    ({"mode": "conditioned"}, ValueError, "task_ids"),
    ({"mode": "conditioned", "task_ids": np.array([0])}, ValueError, "task_ids"),
    ({"mode": "conditioned", "task_ids": np.array([0, 2])}, ValueError, "task_ids"),
    ({"task_ids": np.array([0, 0])}, ValueError, "task_ids"),
    ({"seq_len": 0}, ValueError, "seq_len"),
    ({"dataset": "data"}, TypeError, "dataset"),
])
def test_make_batch_bad_arguments(kwargs, error, match):
    args = {"dataset": indexed(6), "indices": [0, 1], "mode": "joint", **kwargs}
    with pytest.raises(error, match=match):
        make_batch(**args)


# --- BatchIterator --------------------------------------------------------------------------

def test_epochs_cover_every_example_and_reshuffle():
    it = BatchIterator(indexed(23), batch_size=5, mode="joint", seed=0)
    assert len(it) == 5
    first = [rows(b) for b in it]
    second = [rows(b) for b in it]
    assert [len(r) for r in first] == [5, 5, 5, 5, 3]
    for epoch in (first, second):
        np.testing.assert_array_equal(np.sort(np.concatenate(epoch)), np.arange(23))
    assert not np.array_equal(np.concatenate(first), np.concatenate(second))
    assert it.epoch == 1
    again = [rows(b) for b in BatchIterator(indexed(23), batch_size=5, mode="joint", seed=0)]
    np.testing.assert_array_equal(np.concatenate(again), np.concatenate(first))   # seeded


def test_no_shuffle_and_drop_last():
    it = BatchIterator(indexed(23), batch_size=5, mode="joint", shuffle=False, drop_last=True)
    assert len(it) == 4
    np.testing.assert_array_equal(np.concatenate([rows(b) for b in it]), np.arange(20))


def test_resume_from_saved_state():
    def make():
        return BatchIterator(indexed(30, present_b=np.arange(30) % 3 == 0), batch_size=4, mode="conditioned",
                             seed=11, sampling="temperature")

    original = make()
    list(original)                                               # one whole epoch
    stream = iter(original)
    for _ in range(3):
        next(stream)
    saved = json.loads(json.dumps(original.state()))             # plain JSON data
    expected = [(rows(b), host(b["task_ids"])) for b in stream] + [(rows(b), host(b["task_ids"])) for b in original]
    resumed = make()
    resumed.set_state(saved)
    got = [(rows(b), host(b["task_ids"])) for b in resumed] + [(rows(b), host(b["task_ids"])) for b in resumed]
    assert len(got) == len(expected) == len(original) - 3 + len(original)
    for (rows_a, ids_a), (rows_b, ids_b) in zip(expected, got):
        np.testing.assert_array_equal(rows_a, rows_b)
        np.testing.assert_array_equal(ids_a, ids_b)
    assert resumed.state() == original.state()


def test_sampling_weights_formula():
    counts = [100, 10, 0]
    np.testing.assert_allclose(sampling_weights(counts, "uniform"), [0.5, 0.5, 0])
    np.testing.assert_allclose(sampling_weights(counts, "proportional"), [100 / 110, 10 / 110, 0])
    root = np.sqrt([100, 10, 0])
    np.testing.assert_allclose(sampling_weights(counts, "temperature", 2.0), root / root.sum())
    np.testing.assert_allclose(sampling_weights(counts, "temperature", 1.0), sampling_weights(counts, "proportional"))


@pytest.mark.parametrize("sampling", ["uniform", "proportional", "temperature"])
def test_sampling_frequencies(sampling):
    # 'a' on every example, 'b' on the first 10%: only those 10% can draw 'b', with P(b) = w_b / (w_a + w_b)
    size, has_b = 2000, np.arange(2000) < 200
    it = BatchIterator(indexed(size, present_b=has_b), batch_size=500, mode="conditioned", seed=1,
                       sampling=sampling, temperature=2.0)
    drawn = {}
    for _ in range(5):                                            # 5 epochs: 1000 draws among the 'b' examples
        for batch in it:
            for row, task in zip(rows(batch), host(batch["task_ids"])):
                drawn.setdefault(row, []).append(task)
    assert all(t == 0 for row in range(200, size) for t in drawn[row])           # no 'b' without its target
    share_b = np.mean([t for row in range(200) for t in drawn[row]])
    p_b = {"uniform": 0.5, "proportional": 200 / 2200, "temperature": np.sqrt(200) / (np.sqrt(2000) + np.sqrt(200))}
    sigma = np.sqrt(p_b[sampling] * (1 - p_b[sampling]) / 1000)
    assert abs(share_b - p_b[sampling]) < 4 * sigma, (share_b, p_b[sampling])
    # shares of the whole epoch: 0.05, 0.0091, 0.024 -- capped by b's 10% of examples
    overall = share_b * 0.1
    assert {"uniform": 0.04 < overall < 0.06, "proportional": overall < 0.013,
            "temperature": 0.018 < overall < 0.03}[sampling]


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": 2.0}, "batch_size"), ({"batch_size": True}, "batch_size"),
    ({"mode": "mixed"}, "mode"), ({"sampling": "greedy"}, "sampling"),
    ({"sampling": "temperature", "temperature": 0}, "temperature"),
    ({"temperature": float("inf")}, "temperature"), ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"),
    ({"batch_size": 11, "drop_last": True}, "batch_size"), ({"seq_len": -3}, "seq_len"),
])
def test_iterator_bad_arguments(kwargs, match):
    args = {"dataset": indexed(10), "batch_size": 4, "mode": "conditioned", **kwargs}
    with pytest.raises(ValueError, match=match):
        BatchIterator(**args)


def test_iterator_bad_dataset_and_state():
    with pytest.raises(TypeError, match="dataset"):
        BatchIterator([1, 2], 2, "joint")
    with pytest.raises(ValueError, match="example 3 has no task"):
        BatchIterator(MultiTaskDataset(inputs=np.zeros((5, 1), int), lengths=np.ones(5, int),
                                       targets={"y": np.zeros(5, int)}, tasks=[TaskSpec("y", "sequence", 2)],
                                       present={"y": np.arange(5) != 3}, vocab_size=1), 2, "conditioned")
    it = BatchIterator(indexed(10), 4, "joint")
    state = it.state()
    for bad, match in [({**state, "batch_size": 5}, "batch_size"), ({**state, "num_examples": 9}, "num_examples"),
                       ({**state, "batch": 4}, "batch"), ({"epoch": 0}, "keys"),
                       ({**state, "rng": {"bit_generator": "MT19937"}}, "rng")]:
        with pytest.raises(ValueError, match=match):
            it.set_state(bad)
