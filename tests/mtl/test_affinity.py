"""Lookahead task affinity (TAG): first order, self-affinity, symmetry, and training left bit-identical."""

import dataclasses

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.config import ModelConfig
from tinymtt.data import MultiTaskDataset, make_batch, make_sequence_suite
from tinymtt.model import MultiTaskTransformer
from tinymtt.mtl import shared_parameter_names, task_gradients
from tinymtt.mtl.affinity import (
    first_order_affinity,
    jsonable_affinity,
    lookahead_affinity,
    mean_affinity,
)
from tinymtt.optim import SGD, AdamW
from tinymtt.train import TrainConfig, Trainer


def tiny(mode="conditioned", dtype="float64", dropout=0.0):
    data = make_sequence_suite(200, seed=1, max_len=6, num_digits=5)
    model = MultiTaskTransformer(ModelConfig(**data.model_config_kwargs(), d_model=8, num_heads=2, d_ff=16,
                                             num_layers=1, seed=3, dtype=dtype, mode=mode, dropout=dropout))
    return model, data


def conditioned_batch(data):
    rows = np.tile(np.arange(8), 4)
    return make_batch(data, rows, "conditioned", task_ids=np.repeat(np.arange(4), 8))


def sgd_update(model, step_size):
    optimizer = SGD(model.parameters(), lr=step_size)
    return lambda grads: optimizer.lookahead(grads)


def test_first_order_form_matches_the_exact_lookahead_at_a_small_step():
    """Z_{i→j} ≈ η g_i·g_j / L_j under SGD: the gap shrinks like η (it is the O(η²) curvature term over O(η))."""
    model, data = tiny()
    batch = conditioned_batch(data)
    result = model.loss(batch)
    losses = np.array([backend.to_float(v) for v in result.losses.values()])
    grads = task_gradients(model, shared_parameter_names(model), result.counted)
    gaps = []
    for step_size in (1e-3, 1e-4):
        model.loss(batch)
        exact = lookahead_affinity(model, batch, sgd_update(model, step_size), result.counted)
        first = first_order_affinity(grads, losses, step_size)
        assert np.all(np.isfinite(exact)) and np.abs(first).max() > 0
        gaps.append(np.abs(exact - first).max() / np.abs(first).max())
    assert gaps[1] < 1e-3, gaps
    assert gaps[1] < 0.2 * gaps[0], gaps          # linear in η: 10× smaller step, about 10× smaller relative gap


def test_self_affinity_is_positive_at_a_small_step():
    model, data = tiny()
    batch = conditioned_batch(data)
    model.loss(batch)
    affinity = lookahead_affinity(model, batch, sgd_update(model, 1e-3))
    assert np.all(np.diag(affinity) > 0), np.diag(affinity)


def twin_tasks():
    """Two copies of one task (same targets, same head weights): a symmetric construction."""
    data = make_sequence_suite(64, seed=2, max_len=6, num_digits=5).select_tasks(["max"])
    spec = data.tasks[0]
    twins = MultiTaskDataset(inputs=data.inputs, lengths=data.lengths,
                             targets={"a": data.targets["max"], "b": data.targets["max"].copy()},
                             tasks=[dataclasses.replace(spec, name="a"), dataclasses.replace(spec, name="b")],
                             vocab_size=data.vocab_size, pad_id=data.pad_id, name="twins")
    model = MultiTaskTransformer(ModelConfig(**twins.model_config_kwargs(), d_model=8, num_heads=2, d_ff=16,
                                             num_layers=1, seed=5, dtype="float64", mode="joint"))
    for (name_a, a), (name_b, b) in zip(model.heads[0].parameters().items(), model.heads[1].parameters().items()):
        b[...] = a
    table = model.task_encoder.parameters()["out.weight"]      # Tf (T, D): both streams start from one vector
    table[1] = table[0]
    return model, twins


def test_a_symmetric_construction_gives_symmetric_affinity():
    model, twins = twin_tasks()
    batch = make_batch(twins, np.arange(16), "joint")
    optimizer = AdamW(model.parameters(), lr=1e-3)
    model.loss(batch)
    affinity = lookahead_affinity(model, batch, lambda grads: optimizer.lookahead(grads))
    assert np.allclose(affinity, affinity.T, rtol=1e-9, atol=1e-12)
    assert np.isclose(affinity[0, 0], affinity[1, 1], rtol=1e-9) and affinity[0, 1] > 0
    # (Z_aa ≠ Z_ab: task a's own step also moves its row Tf[a] of the task encoder, which stream b does not read.)


def test_a_task_absent_from_the_batch_has_no_affinity():
    model, data = tiny()
    batch = make_batch(data, np.arange(16), "conditioned", task_ids=np.repeat([0, 1], 8))
    result = model.loss(batch)
    affinity = lookahead_affinity(model, batch, sgd_update(model, 1e-3), result.counted)
    assert np.all(np.isfinite(affinity[:2, :2]))
    assert np.all(np.isnan(affinity[2:, :])) and np.all(np.isnan(affinity[:, 2:]))
    assert jsonable_affinity(affinity)[3] == [None] * 4


def test_the_model_is_left_as_it_was():
    """Parameters, gradients, caches: a backward after the measurement gives the gradients it gave before."""
    model, data = tiny(dropout=0.2)
    batch = conditioned_batch(data)
    model.loss(batch)
    model.backward()
    params = {n: p.copy() for n, p in model.parameters().items()}
    grads = {n: g.copy() for n, g in model.gradients().items()}
    calls = [getattr(m, "calls", None) for _, m in model.named_modules()]
    lookahead_affinity(model, batch, sgd_update(model, 1e-2))
    assert all(np.array_equal(params[n], p) for n, p in model.parameters().items())
    assert all(np.array_equal(grads[n], g) for n, g in model.gradients().items())
    assert calls == [getattr(m, "calls", None) for _, m in model.named_modules()]
    model.zero_grad()
    model.backward()                                   # from the step's own forward pass (its dropout masks)
    assert all(np.array_equal(grads[n], g) for n, g in model.gradients().items())


@pytest.mark.parametrize("mode", ["conditioned", "joint"])
def test_logging_the_affinity_leaves_training_bit_identical(tmp_path, mode):
    finals, histories = [], []
    for log in (False, True):
        model, data = tiny(mode=mode, dtype="float32", dropout=0.1)
        config = TrainConfig(steps=6, batch_size=16, warmup_steps=1, log_every=2, eval_every=100,
                             checkpoint_every=100, log_affinity=log)
        Trainer(model, data, None, config, out_dir=tmp_path / f"{mode}{log}", progress=False).fit()
        finals.append({n: backend.to_numpy(p).copy() for n, p in model.parameters().items()})
        histories.append((tmp_path / f"{mode}{log}" / "history.jsonl").read_text())
    assert all(np.array_equal(finals[0][n], finals[1][n]) for n in finals[0])
    assert '"affinity"' not in histories[0] and histories[1].count('"affinity"') == 3


def test_the_optimizer_lookahead_is_its_step_and_changes_nothing():
    model, data = tiny()
    batch = conditioned_batch(data)
    optimizer = AdamW(model.parameters(), lr=1e-2)
    for _ in range(2):                                 # some state: moments and a step count
        model.zero_grad()
        model.loss(batch)
        model.backward()
        optimizer.step(model.gradients())
    model.zero_grad()
    model.loss(batch)
    model.backward()
    state = {k: (v.copy() if hasattr(v, "copy") else v) for k, v in optimizer.state_dict().items()}
    moved = optimizer.lookahead(model.gradients(), lr=3e-3)
    assert optimizer.lr == 1e-2 and optimizer.step_count == 2
    assert all(np.array_equal(state[k], v) for k, v in optimizer.state_dict().items())
    optimizer.lr = 3e-3
    optimizer.step(model.gradients())
    assert all(np.array_equal(moved[n], p) for n, p in model.parameters().items())


def test_mean_affinity_skips_what_was_not_measured():
    records = [[[1.0, None], [0.5, 2.0]], [[3.0, None], [None, 4.0]]]
    mean = mean_affinity(records)
    assert mean[0, 0] == 2.0 and mean[1, 0] == 0.5 and mean[1, 1] == 3.0 and np.isnan(mean[0, 1])
