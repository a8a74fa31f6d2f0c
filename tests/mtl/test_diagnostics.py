"""Gradient-conflict diagnostics: cosines and norms, the log, the record that restores the gradients, the plot."""

import json

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.config import ModelConfig
from tinymtt.data import make_batch, make_sequence_suite
from tinymtt.gradcheck import rel_error
from tinymtt.model import MultiTaskTransformer
from tinymtt.mtl import task_gradients
from tinymtt.mtl.diagnostics import ConflictLog, conflict_record, gradient_conflict
from tinymtt.train import Trainer, TrainConfig
from tinymtt.validation import ShapeError

from helpers import randn


def test_hand_made_gradients():
    grads = backend.to_device(np.array([[1.0, 0.0], [-1.0, 1.0], [0.0, 2.0]]))
    result = gradient_conflict(grads)
    s = 1 / np.sqrt(2)
    expected = np.array([[1, -s, 0], [-s, 1, s], [0, s, 1]])
    assert np.allclose(result["cosine"], expected, atol=1e-15)
    assert np.allclose(result["norms"], [1, np.sqrt(2), 2])
    assert result["conflict"] and result["pairs"] == [(0, 1)]
    assert result["conflicts"].tolist() == [[False, True, False], [True, False, False], [False, False, False]]


@pytest.mark.parametrize("tasks, size, dtype", [(2, 5, np.float64), (4, 50, np.float64), (3, 7, np.float32),
                                                (1, 3, np.float64)])
def test_matches_a_direct_computation(tasks, size, dtype):
    grads = randn(tasks, size, seed=tasks, dtype=dtype)
    host = backend.to_numpy(grads).astype(np.float64)
    norms = np.linalg.norm(host, axis=1)
    cosine = host @ host.T / np.outer(norms, norms)
    np.fill_diagonal(cosine, 1.0)
    result = gradient_conflict(grads)
    tolerance = 1e-12 if dtype == np.float64 else 1e-6
    assert rel_error(result["norms"], norms) <= tolerance
    assert np.abs(result["cosine"] - cosine).max() <= tolerance
    upper = np.triu(cosine < 0, k=1)
    assert result["conflict"] == bool(upper.any())
    assert result["pairs"] == [(int(i), int(j)) for i, j in zip(*np.nonzero(upper))]


def test_no_conflict_when_all_gradients_agree():
    grads = backend.to_device(np.array([[1.0, 2.0, 0.0], [0.5, 1.0, 3.0], [2.0, 0.1, 0.1]]))
    result = gradient_conflict(grads)
    assert not result["conflict"] and result["pairs"] == []
    assert np.all(result["cosine"] >= 0)


def test_absent_and_zero_tasks_have_no_direction():
    grads = backend.to_device(np.array([[1.0, 0.0], [-1.0, 0.5], [0.0, 0.0]]))
    result = gradient_conflict(grads, counted={"a": True, "b": False, "c": True})
    assert np.isnan(result["norms"][1]) and result["norms"][2] == 0.0     # absent: NaN; present but zero: 0
    cosine = result["cosine"]
    assert cosine[0, 0] == 1.0 and np.isnan(cosine[1]).all() and np.isnan(cosine[:, 2]).all()
    assert not result["conflict"]                # the only conflicting row is the absent task's


def test_bad_inputs_are_named():
    with pytest.raises((ShapeError, TypeError, ValueError), match="task_grads"):
        gradient_conflict(randn(5))
    with pytest.raises(ValueError, match="counted"):
        gradient_conflict(randn(2, 3), counted=[True])
    with pytest.raises(ValueError, match="NaN"):
        gradient_conflict(backend.to_device(np.array([[np.nan, 1.0], [1.0, 1.0]])))


def test_conflict_log_statistics_and_json():
    log = ConflictLog(["a", "b", "c"])
    log.add(10, [[1, -0.5, 0.2], [-0.5, 1, 0.4], [0.2, 0.4, 1]], norms=[1.0, 2.0, 3.0])
    log.add(20, np.array([[1, 0.3, -0.1], [0.3, 1, np.nan], [-0.1, np.nan, 1]]))
    log.add_record(30, {"cosine": [[1, -0.2, None], [-0.2, 1, None], [None, None, None]], "norms": [1, 1, None]})
    document = json.loads(json.dumps(log.to_dict(), allow_nan=False))
    assert document["steps"] == 3 and document["tasks"] == ["a", "b", "c"]
    assert document["conflict_share"] == pytest.approx(1.0)          # every step had a conflicting pair
    pairs = {tuple(p["tasks"]): p for p in document["pairs"]}
    assert pairs[("a", "b")]["steps"] == 3
    assert pairs[("a", "b")]["mean_cosine"] == pytest.approx((-0.5 + 0.3 - 0.2) / 3)
    assert pairs[("a", "b")]["conflict_share"] == pytest.approx(2 / 3)
    assert pairs[("a", "c")]["steps"] == 2 and pairs[("a", "c")]["conflict_share"] == pytest.approx(0.5)
    assert pairs[("b", "c")]["steps"] == 1 and pairs[("b", "c")]["mean_cosine"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="cosine"):
        log.add(40, np.eye(2))


def test_conflict_log_reads_history_records():
    records = [{"step": 5, "loss": 1.0},
               {"step": 10, "conflict": {"tasks": ["x", "y"], "cosine": [[1, -0.4], [-0.4, 1]], "norms": [1, 2]}},
               {"step": 20, "conflict": {"tasks": ["x", "y"], "cosine": [[1, 0.2], [0.2, 1]], "norms": [1, 2]}}]
    log = ConflictLog.from_history(records)
    assert log.task_names == ["x", "y"] and log.steps == [10, 20]
    assert log.mean_cosine()[0, 1] == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="conflict"):
        ConflictLog.from_history([{"step": 1}])


def tiny_model_and_data(dtype="float64"):
    data = make_sequence_suite(200, seed=1, max_len=6, num_digits=5)
    model = MultiTaskTransformer(ModelConfig(**data.model_config_kwargs(), d_model=8, num_heads=2, d_ff=16,
                                             num_layers=1, seed=3, dtype=dtype))
    return model, data


def probe(data):
    rows = np.tile(np.arange(8), 4)
    return make_batch(data, rows, "conditioned", task_ids=np.repeat(np.arange(4), 8))


def test_conflict_record_restores_the_gradients_and_matches_task_gradients():
    model, data = tiny_model_and_data()
    batch = probe(data)
    model.zero_grad()
    result = model.loss(batch)
    weight_grads = model.backward()
    before = {name: grad.copy() for name, grad in model.gradients().items()}
    record = conflict_record(model, result.counted)
    after = model.gradients()
    assert all(np.array_equal(backend.to_numpy(before[n]), backend.to_numpy(after[n])) for n in before)
    # and the loss that the next backward reads is the one it was: ∂L/∂w_τ = L_τ comes out the same
    assert np.array_equal(backend.to_numpy(model.backward()), backend.to_numpy(weight_grads))
    json.dumps(record, allow_nan=False)
    assert record["tasks"] == model.config.task_names
    expected = gradient_conflict(task_gradients(model), result.counted)
    assert np.abs(np.array(record["cosine"]) - expected["cosine"]).max() <= 1e-12
    assert rel_error(np.array(record["norms"]), expected["norms"]) <= 1e-12
    assert record["conflict"] == expected["conflict"]


def test_conflict_record_before_any_loss_is_a_clear_error():
    model, _ = tiny_model_and_data()
    with pytest.raises(RuntimeError, match="loss"):
        conflict_record(model)


def test_recording_during_training_changes_nothing():
    """A run that records the conflict after every backward pass ends with the same parameters."""
    finals = []
    for record in (False, True):
        model, data = tiny_model_and_data(dtype="float32")
        trainer = Trainer(model, data, None, TrainConfig(steps=6, batch_size=16, warmup_steps=1, log_every=100),
                          progress=False)
        records = []
        if record:
            step = trainer.optimizer.step

            def recording_step(grads, step=step):
                records.append(conflict_record(model))     # between backward and the optimizer step
                step(grads)
            trainer.optimizer.step = recording_step
        trainer.fit()
        finals.append({n: backend.to_numpy(p).copy() for n, p in model.parameters().items()})
        assert len(records) == (6 if record else 0)
    assert all(np.array_equal(finals[0][n], finals[1][n]) for n in finals[0])
