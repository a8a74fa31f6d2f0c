"""The multi-task layers: TaskEncoder (one-hot task id -> task features, with and without
a hidden ReLU layer) and TaskAttention (streams attend over tasks, tanh(γ) gate)."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.backend import init_rng
from tinymtt.nn import LayerNorm, TaskAttention, TaskEncoder, one_hot

from helpers import host, randn
from layer_check import check_layer, randomize

F64 = "float64"


def ids(*values):
    return backend.to_device(np.array(values))


# --- TaskEncoder -----------------------------------------------------------------

@pytest.mark.parametrize("hidden", [None, 5])
def test_task_encoder_gradients(hidden):
    layer = TaskEncoder(4, 6, init_rng(0), hidden=hidden, dtype=F64)   # seed 0: no kink nearby
    task_ids = ids(2, 0, 2, 1, 2)                         # task 3 unused, task 2 repeated
    if hidden:
        # ReLU kink: a step h = 2e-3 moves a pre-activation W1[t] + b1 by 2e-3 at most
        pre = host(layer.hidden.params["weight"])[[0, 1, 2]] + host(layer.hidden.params["bias"])
        assert np.abs(pre).min() > 1e-2, np.abs(pre).min()
        assert 0 < (pre > 0).sum() < pre.size               # the ReLU both passes and blocks
    errors = check_layer(layer, layer.forward, {"task_ids": task_ids}, name=f"TaskEncoder(hidden={hidden})")
    assert not any(k.startswith("d") for k in errors)       # integer ids: no input gradient
    first = layer.hidden if hidden else layer.out
    grad = host(first.grads["weight"])
    assert not np.any(grad[3]) and np.all(np.any(grad[:3] != 0, axis=1))   # unused task: no gradient


def test_task_encoder_output_is_the_task_row():
    layer = TaskEncoder(3, 4, init_rng(0), dtype=F64)
    out = host(layer(ids(1, 1, 0)))
    w, b = host(layer.out.params["weight"]), host(layer.out.params["bias"])
    np.testing.assert_allclose(out, w[[1, 1, 0]] + b, rtol=1e-15)
    assert layer.backward(randn(3, 4, seed=1)) is None


def test_one_hot_rows():
    np.testing.assert_array_equal(host(one_hot(ids(2, 0), 3, F64)), [[0, 0, 1], [1, 0, 0]])
    assert one_hot(ids(1), 2, "float32").dtype == np.float32


def test_task_encoder_bad_ids_are_named():
    layer = TaskEncoder(3, 4, init_rng(0), dtype=F64)
    with pytest.raises(ValueError, match=r"task_ids must lie in \[0, 3\)"):
        layer(ids(0, 3))
    with pytest.raises(ValueError, match="task_ids"):
        layer(ids(-1, 0))
    with pytest.raises(TypeError, match="task_ids must be an integer array"):
        layer(backend.to_device(np.array([0.0, 1.0])))
    with pytest.raises(ValueError, match="task_ids must have 1 dimensions"):
        layer(backend.to_device(np.array([[0, 1]])))
    with pytest.raises(ValueError, match="hidden"):
        TaskEncoder(3, 4, init_rng(0), hidden=-2)


# --- TaskAttention ---------------------------------------------------------------

def gated(gate_value, *, d_model=8, heads=2, tasks=3, seed=4, gate=True):
    layer = randomize(TaskAttention(d_model, heads, tasks, init_rng(seed), gate=gate, dtype=F64), seed=seed + 1, scale=0.1)
    if gate:
        layer.params["gate"][...] = gate_value
    return layer


# (B, T, S, D, H): batch 1, one task, one position, one head
SHAPES = [(2, 3, 4, 8, 2), (1, 2, 1, 4, 1), (2, 1, 3, 4, 2), (1, 4, 2, 6, 3)]


@pytest.mark.parametrize("batch, tasks, seq_len, d_model, heads", SHAPES,
                         ids=[f"B{b}T{t}S{s}D{d}H{h}" for b, t, s, d, h in SHAPES])
def test_task_attention_gradients_with_an_open_gate(batch, tasks, seq_len, d_model, heads):
    layer = gated(0.4, d_model=d_model, heads=heads, tasks=tasks)
    errors = check_layer(layer, layer.forward, {"streams": randn(batch, tasks, seq_len, d_model, seed=6)},
                         name=f"TaskAttention(gate=0.4, T={tasks})")
    assert "gate" in errors and errors["gate"] <= 1e-7
    assert float(host(layer.grads["gate"])[0]) != 0.0


def test_task_attention_gradients_without_a_gate():
    layer = gated(None, gate=False)
    assert "gate" not in layer.params
    check_layer(layer, layer.forward, {"streams": randn(2, 3, 4, 8, seed=7)}, name="TaskAttention(gate=False)")


def test_gate_gradient_by_its_own_finite_difference():
    """dγ alone: L(γ) = sum(out(γ)·g) as a function of the one number γ."""
    streams = randn(2, 3, 4, 8, seed=8)
    g = randn(2, 3, 4, 8, seed=9)
    for gamma in (0.4, -1.3, 0.0):
        layer = gated(gamma)
        layer(streams)
        layer.backward(g)
        analytic = float(host(layer.grads["gate"])[0])

        def loss(value):
            layer.params["gate"][...] = value
            return float(host((layer(streams) * g).sum()))

        h = 1e-4
        numeric = (8 * (loss(gamma + h / 2) - loss(gamma - h / 2)) - (loss(gamma + h) - loss(gamma - h))) / (6 * h)
        assert analytic != 0.0
        assert abs(analytic - numeric) / (abs(analytic) + abs(numeric)) <= 1e-7, (gamma, analytic, numeric)


def test_closed_gate_keeps_streams_independent():
    """γ = 0: out = LayerNorm(X) per stream, the attention gets no gradient, γ does."""
    layer = gated(0.0)
    streams = randn(2, 3, 4, 8, seed=10)
    out = layer(streams)
    norm = LayerNorm(8, dtype=F64)
    norm.params.update({k: v.copy() for k, v in layer.norm.params.items()})
    np.testing.assert_allclose(host(out), host(norm(streams)), rtol=1e-13, atol=1e-13)
    layer.zero_grad()
    layer.backward(randn(2, 3, 4, 8, seed=11))
    for k, v in layer.attn.gradients().items():
        assert not np.any(host(v)), k
    assert float(host(layer.grads["gate"])[0]) != 0.0


def test_open_gate_mixes_the_streams():
    layer = gated(0.8)
    streams = host(randn(2, 3, 4, 8, seed=12))
    out = host(layer(backend.to_device(streams)))
    changed = streams.copy()
    changed[:, 2] += 1.0                              # change only task 2's stream
    out_changed = host(layer(backend.to_device(changed)))
    assert not np.allclose(out_changed[:, 0], out[:, 0])    # task 0 read task 2
    # ... but only at the same position: positions never mix in task attention
    changed = streams.copy()
    changed[:, :, 3] += 1.0
    np.testing.assert_allclose(host(layer(backend.to_device(changed)))[:, :, :3], out[:, :, :3], rtol=1e-13)


def test_affinity_rows_are_distributions():
    layer = gated(0.5, tasks=3)
    layer(randn(2, 3, 4, 8, seed=13))
    affinity = host(layer.affinity())
    assert affinity.shape == (3, 3)
    np.testing.assert_allclose(affinity.sum(axis=1), 1.0, rtol=1e-12)
    mask = backend.to_device(np.array([[True, True, False, False], [True, False, False, False]]))
    masked = host(layer.affinity(mask))
    np.testing.assert_allclose(masked.sum(axis=1), 1.0, rtol=1e-12)
    weights = host(layer.attn.weights).mean(axis=1).reshape(2, 4, 3, 3)
    np.testing.assert_allclose(masked, weights[[0, 0, 1], [0, 1, 0]].mean(axis=0), rtol=1e-12)
    with pytest.raises(RuntimeError, match="forward"):
        gated(0.5).affinity()


def test_task_attention_bad_streams_are_named():
    layer = gated(0.5, tasks=3)
    with pytest.raises(ValueError, match=r"streams must have shape \(B, T, S, D\)"):
        layer(randn(2, 2, 4, 8))
    with pytest.raises(ValueError, match="streams must have 4 dimensions"):
        layer(randn(2, 3, 8))
    with pytest.raises(TypeError, match="streams"):
        layer(backend.to_device(np.zeros((2, 3, 4, 8), dtype=np.int64)))
