"""The whole model: gradient checks in both modes, learning, determinism, bad input."""

import re
import time

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.config import ModelConfig, TaskSpec
from tinymtt.gradcheck import MODEL_TOLERANCE, coordinate_check, directional_check
from tinymtt.model import MultiTaskTransformer
from tinymtt.optim import Adam

from helpers import host

TASKS = [dict(name="sort", kind="token", num_outputs=6),
         dict(name="max", kind="sequence", num_outputs=6),
         dict(name="mean", kind="regression", num_outputs=1)]


def small_config(batching, **overrides):
    settings = dict(tasks=TASKS, vocab_size=6, max_len=8, d_model=8, num_heads=2, d_ff=16, num_layers=2,
                    mode=batching, dtype="float64", task_hidden=6)
    settings.update(overrides)
    return ModelConfig(**settings)


def small_batch(mode, seed=0, size=4, seq_len=5, vocab=6, input_dim=None):
    rng = np.random.default_rng(seed)
    lengths = np.array([seq_len, seq_len - 2, 1, seq_len - 1][:size])
    mask = np.arange(seq_len)[None, :] < lengths[:, None]
    if input_dim is None:
        inputs = rng.integers(0, vocab, (size, seq_len))
    else:
        inputs = rng.standard_normal((size, seq_len, input_dim))
    batch = dict(inputs=backend.to_device(inputs), mask=backend.to_device(mask),
                 targets=dict(sort=backend.to_device(rng.integers(0, 6, (size, seq_len))),
                              max=backend.to_device(rng.integers(0, 6, size)),
                              mean=backend.to_device(rng.standard_normal((size, 1)))))
    if mode == "conditioned":
        batch["task_ids"] = backend.to_device(np.arange(size) % 3)
    else:
        batch["present"] = {"max": backend.to_device(np.array([True, False, True, True][:size]))}
    return batch


def prepared(mode, **overrides):
    model = MultiTaskTransformer(small_config(mode, **overrides))
    if model.task_attention is not None and model.task_attention.gated:
        model.task_attention.params["gate"][...] = 0.4   # open the gate: every gradient non-zero
    return model


@pytest.mark.parametrize("mode", ["conditioned", "joint"])
@pytest.mark.parametrize("overrides", [{}, dict(norm_first=False, activation="relu", task_hidden=None),
                                       dict(causal=True, task_attention_gate=False)])
def test_whole_model_gradient_check(mode, overrides):
    model = prepared(mode, **overrides)
    batch = small_batch(mode)
    weights = backend.to_device(np.array([1.0, 0.5, 2.0]))
    start = time.perf_counter()
    model.zero_grad()
    model.loss(batch, weights)
    model.backward()
    params, grads = model.parameters(), model.gradients()

    def loss():
        return model.loss(batch, weights)[0]

    ok, directions = directional_check(loss, params, grads, num_directions=4)
    assert ok, directions
    ok, worst = coordinate_check(loss, params, grads, per_param=2)
    assert ok, {k: v for k, v in worst.items() if v > MODEL_TOLERANCE}
    elapsed = time.perf_counter() - start
    # every parameter tensor is touched by the loss (the gradient check would miss an unused one)
    untouched = [k for k, g in grads.items() if not np.any(host(g))]
    assert untouched == [] or all(k.endswith("wk.bias") for k in untouched), untouched
    print(f"\n{mode} {overrides}: worst directional {max(d.error for d in directions):.1e}, "
          f"worst coordinate {max(worst.values()):.1e}, {elapsed:.2f} s")


@pytest.mark.parametrize("mode", ["conditioned", "joint"])
def test_weight_gradients_are_the_task_losses(mode):
    model = prepared(mode)
    batch = small_batch(mode)
    total, losses, _ = model.loss(batch, [1.0, 2.0, 3.0])
    weight_grads = model.backward()
    np.testing.assert_allclose(host(weight_grads), [float(host(losses[n])) for n in ("sort", "max", "mean")])
    assert float(host(total)) == pytest.approx(sum(w * float(host(losses[n]))
                                                   for w, n in zip((1, 2, 3), ("sort", "max", "mean"))))


def test_continuous_inputs_gradient_check():
    model = prepared("joint", vocab_size=None, input_dim=3)
    batch = small_batch("joint", input_dim=3)
    model.loss(batch)
    model.backward()
    ok, directions = directional_check(lambda: model.loss(batch)[0], model.parameters(), model.gradients())
    assert ok, directions


def test_per_task_backward_sums_to_the_weighted_backward():
    model = prepared("joint")
    batch = small_batch("joint")
    weights = np.array([1.0, 0.5, 2.0])
    model.loss(batch, weights)
    model.zero_grad()
    model.backward()
    together = {k: host(g).copy() for k, g in model.gradients().items()}
    summed = {k: 0.0 for k in together}
    for i in range(3):
        model.zero_grad()
        model.backward(dlosses=np.eye(3)[i] * weights[i])
        for k, g in model.gradients().items():
            summed[k] = summed[k] + host(g)
    for k in together:
        np.testing.assert_allclose(summed[k], together[k], rtol=1e-10, atol=1e-12)


def test_absent_task_is_reported_not_counted():
    model = prepared("conditioned")
    batch = small_batch("conditioned")
    batch["task_ids"] = backend.to_device(np.array([0, 0, 1, 1]))
    _, losses, counted = model.loss(batch)
    assert counted == {"sort": True, "max": True, "mean": False}
    assert float(host(losses["mean"])) == 0.0


def overfit(mode, steps=150):
    config = ModelConfig(tasks=TASKS, vocab_size=6, max_len=8, d_model=32, num_heads=4, d_ff=64, num_layers=2,
                         mode=mode, dtype="float32", seed=1)
    model = MultiTaskTransformer(config)
    batch = small_batch(mode, seed=3)
    if mode == "joint":
        batch.pop("present")
    optimizer = Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        model.zero_grad()
        total, losses, _ = model.loss(batch)
        model.backward()
        optimizer.step(model.gradients())
    return {k: float(host(v)) for k, v in losses.items()}


@pytest.mark.parametrize("mode", ["conditioned", "joint"])
def test_overfits_a_tiny_batch_of_each_task_kind(mode):
    losses = overfit(mode)
    assert all(v < 0.02 for v in losses.values()), losses


def test_same_seed_gives_bit_identical_results():
    first = overfit("joint", steps=5)
    second = overfit("joint", steps=5)
    assert first == second
    a = MultiTaskTransformer(small_config("conditioned", seed=7)).parameters()
    b = MultiTaskTransformer(small_config("conditioned", seed=7)).parameters()
    c = MultiTaskTransformer(small_config("conditioned", seed=8)).parameters()
    assert all(np.array_equal(host(a[k]), host(b[k])) for k in a)
    assert not all(np.array_equal(host(a[k]), host(c[k])) for k in a)


def test_dropout_trains_reproducibly_and_eval_is_deterministic():
    config = small_config("conditioned", dropout=0.3, dtype="float32")
    batch = small_batch("conditioned")
    runs = []
    for _ in range(2):
        model = MultiTaskTransformer(config)
        runs.append([float(host(model.loss(batch)[0])) for _ in range(3)])
    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 1                     # a new mask each call
    model.eval()
    assert float(host(model.loss(batch)[0])) == float(host(model.loss(batch)[0]))


def test_float32_model_stays_float32():
    model = MultiTaskTransformer(small_config("joint", dtype="float32"))
    total, losses, _ = model.loss(small_batch("joint"))
    model.backward()
    assert total.dtype == np.float32
    assert all(g.dtype == np.float32 for g in model.gradients().values())


@pytest.mark.parametrize("bad, message", [
    (dict(tasks=[]), "at least one task"),
    (dict(tasks=[dict(name="a", kind="color", num_outputs=2)]), "kind must be one of"),
    (dict(tasks=[dict(name="a", kind="token", num_outputs=1)]), "num_outputs >= 2"),
    (dict(tasks=[dict(name="a", kind="token", num_outputs=3)] * 2), "unique"),
    (dict(d_model=10, num_heads=4), "divisible by num_heads"),
    (dict(vocab_size=None), "exactly one of vocab_size"),
    (dict(input_dim=3), "exactly one of vocab_size"),
    (dict(mode="mixed"), "mode must be one of"),
    (dict(dropout=1.0), "dropout"),
    (dict(num_layers=0), "num_layers"),
    (dict(dtype="float16"), "dtype"),
])
def test_bad_configs_give_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        small_config("conditioned", **bad)


def test_unknown_config_key_is_named():
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict(dict(small_config("joint").to_dict(), heads=3))
    assert ModelConfig.from_dict(small_config("joint").to_dict()) == small_config("joint")


def _break(batch, key, value):
    broken = dict(batch, targets=dict(batch["targets"]))
    if key.startswith("targets."):
        broken["targets"][key.split(".")[1]] = backend.to_device(value)
    else:
        broken[key] = backend.to_device(value) if value is not None else None
    return broken


@pytest.mark.parametrize("key, value, error, message", [
    ("task_ids", np.array([0, 1, 3, 0]), ValueError, r"task_ids.*\[0, 3\).*got a value 3"),
    ("task_ids", np.array([0, 1]), ValueError, r"task_ids.*shape"),
    ("task_ids", None, ValueError, "needs batch\\['task_ids'\\]"),
    ("inputs", np.array([[0, 1, 9, 2, 3]] * 4), ValueError, r"inputs.*\[0, 6\).*got a value 9"),
    ("inputs", np.zeros((4, 5)), TypeError, r"inputs.*integer"),
    ("inputs", np.zeros((4, 9), dtype=np.int64), ValueError, "max_len"),
    ("mask", np.ones((4, 5)), TypeError, r"mask.*boolean"),
    ("mask", np.ones((4, 3), dtype=bool), ValueError, r"mask.*\(B, S\)"),
    ("targets.sort", np.full((4, 5), 7), ValueError, r"sort.*targets.*\[0, 6\)"),
    ("targets.max", np.zeros((4, 2), dtype=np.int64), ValueError, r"max.*\(B,\)"),
    ("targets.mean", np.zeros((4,)), ValueError, r"mean.*\(B, K\)"),
    ("targets.mean", np.zeros((4, 1), dtype=np.int64), TypeError, r"mean.*floating"),
])
def test_bad_batches_give_clear_errors(key, value, error, message):
    model = MultiTaskTransformer(small_config("conditioned"))
    with pytest.raises(error, match=message):
        model.loss(_break(small_batch("conditioned"), key, value))


def test_unknown_target_task_and_bad_weights():
    model = MultiTaskTransformer(small_config("conditioned"))
    batch = small_batch("conditioned")
    with pytest.raises(KeyError, match="unknown tasks"):
        model.loss(dict(batch, targets=dict(batch["targets"], colour=batch["targets"]["max"])))
    with pytest.raises(ValueError, match="one entry per task"):
        model.loss(batch, [1.0, 2.0])
    with pytest.raises(KeyError, match="unknown tasks"):
        model.loss(batch, {"colour": 1.0})


def test_backward_before_loss_is_a_clear_error():
    model = MultiTaskTransformer(small_config("joint"))
    with pytest.raises(RuntimeError, match="before loss"):
        model.backward()


def test_backward_after_a_forward_alone_is_a_clear_error():
    """forward keeps what the layers need, but the weights enter in loss: backward needs loss."""
    model = MultiTaskTransformer(small_config("conditioned"))
    model.forward(small_batch("conditioned"))
    with pytest.raises(RuntimeError, match="before loss"):
        model.backward()


@pytest.mark.parametrize("mode", ["conditioned", "joint"])
def test_loss_returns_a_named_result_and_sets_nothing_on_the_model(mode):
    model = prepared(mode)
    before = set(vars(model))
    result = model.loss(small_batch(mode), [1.0, 2.0, 3.0])
    assert result._fields == ("total", "losses", "counted")
    assert list(result.losses) == list(result.counted) == model.config.task_names
    assert all(isinstance(flag, bool) for flag in result.counted.values())
    assert float(host(result.total)) == pytest.approx(sum(w * float(host(result.losses[n]))
                                                          for w, n in zip((1, 2, 3), model.config.task_names)))
    model.backward()
    assert set(vars(model)) == before           # no attribute appears for another module to read back


@pytest.mark.parametrize("where", ["inputs", "target"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_data_is_refused_naming_the_array_and_index(where, bad):
    """A NaN or inf input or regression target would give a NaN loss and NaN gradients: refused first."""
    config = ModelConfig(tasks=[TaskSpec("value", "regression", 2)], vocab_size=None, input_dim=3, max_len=4,
                         d_model=8, num_heads=2, d_ff=16, num_layers=1, dtype="float64")
    model = MultiTaskTransformer(config)
    rng = np.random.default_rng(0)
    batch = {"inputs": rng.standard_normal((2, 4, 3)), "mask": np.ones((2, 4), bool),
             "task_ids": np.zeros(2, dtype=int), "targets": {"value": rng.standard_normal((2, 2))}}
    array = batch["inputs"] if where == "inputs" else batch["targets"]["value"]
    array[(1, 2, 0) if where == "inputs" else (1, 1)] = bad
    name = "batch['inputs']" if where == "inputs" else "batch['targets']['value']"
    index = "(1, 2, 0)" if where == "inputs" else "(1, 1)"
    with pytest.raises(ValueError, match=re.escape(f"{name} must be finite, but holds {bad} at index {index}")):
        model.loss(batch)


def test_a_fully_masked_batch_counts_no_token_task_and_logs_no_negative_zero():
    config = ModelConfig(tasks=[TaskSpec("a", "token", 5), TaskSpec("b", "sequence", 3)], vocab_size=5, max_len=4,
                         d_model=8, num_heads=2, d_ff=16, num_layers=1)
    model = MultiTaskTransformer(config)
    batch = {"inputs": np.zeros((2, 4), int), "mask": np.zeros((2, 4), bool), "task_ids": np.array([0, 1]),
             "targets": {"a": np.zeros((2, 4), int), "b": np.zeros(2, int)}}
    result = model.loss(batch)
    assert result.counted == {"a": False, "b": True}    # no real token: task a has nothing to count
    assert float(result.losses["a"]) == 0.0 and not np.signbit(result.losses["a"])   # 0, not -0
