"""Task modules: TaskLayerNorm, TaskLoRA, MixtureOfExperts and blocks that hold them --
finite differences, the torch oracle, what they are at the start, the gate matrix, bad inputs."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.backend import init_rng
from tinymtt.gradcheck import rel_error
from tinymtt.nn import (FeedForward, LayerNorm, MixtureOfExperts, TaskLayerNorm, TaskLoRA, TaskOptions,
                        TransformerBlock)

from helpers import host, randn, to_torch, torch_grads, torch_or_skip
from layer_check import check_layer, randomize

F64 = "float64"
D, T = 6, 3


def ids(*values):
    return backend.to_device(np.array(values))


TASKS = ids(2, 0, 2, 2)   # task 2 three times, task 1 never


def experts_layer(num_experts=3, seed=0):
    rng = init_rng(seed)
    return MixtureOfExperts([FeedForward(D, 8, rng, dtype=F64) for _ in range(num_experts)], D, T, dtype=F64)


# --- finite differences -------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 5, D), (4, D), (4, 2, 3, D)])
def test_task_layer_norm_gradients(shape):
    layer = randomize(TaskLayerNorm(D, T, init_rng(0), embed_dim=3, dtype=F64), seed=1)
    errors = check_layer(layer, layer.forward, {"x": randn(*shape, seed=2, scale=2.0), "tasks": TASKS},
                         name=f"TaskLayerNorm{shape}")
    assert {"dx", "task_embedding", "gamma_weight", "beta_weight"} <= set(errors)
    assert not np.any(host(layer.grads["task_embedding"])[1])      # an unused task gets no gradient


def test_task_lora_gradients():
    layer = randomize(TaskLoRA(D, 4, T, 2, init_rng(0), dtype=F64), seed=3)
    check_layer(layer, layer.forward, {"x": randn(4, 5, D, seed=4), "tasks": TASKS}, name="TaskLoRA")
    assert not np.any(host(layer.grads["lora_a"])[1]) and not np.any(host(layer.grads["lora_b"])[1])


@pytest.mark.parametrize("num_experts", [1, 3])
def test_mixture_of_experts_gradients(num_experts):
    layer = randomize(experts_layer(num_experts), seed=5)
    check_layer(layer, layer.forward, {"x": randn(4, 5, D, seed=6), "tasks": TASKS}, name=f"MMoE(E={num_experts})")


def test_feed_forward_with_lora_gradients():
    layer = randomize(FeedForward(D, 8, init_rng(0), dtype=F64, lora_rank=2, num_tasks=T), seed=21)
    errors = check_layer(layer, layer.forward, {"x": randn(4, 5, D, seed=22), "tasks": TASKS}, name="FFN + LoRA")
    assert {"lora.0.lora_a", "lora.1.lora_b"} <= set(errors)


def test_feed_forward_with_lora_agrees_with_torch():
    torch = torch_or_skip()
    layer = randomize(FeedForward(D, 8, init_rng(0), dtype=F64, lora_rank=2, num_tasks=T), seed=23)
    x = randn(4, 5, D, seed=24)
    out = layer(x, TASKS)
    dout = randn(*out.shape, seed=25)
    dx = layer.backward(dout)
    p = {k: to_torch(v) for k, v in layer.parameters().items()}
    tx, index = to_torch(x), torch.tensor(host(TASKS))
    hidden = torch.nn.functional.gelu(tx @ p["linear1.weight"] + p["linear1.bias"]
                                      + tx @ p["lora.0.lora_a"][index] @ p["lora.0.lora_b"][index], approximate="tanh")
    expected = (hidden @ p["linear2.weight"] + p["linear2.bias"]
                + hidden @ p["lora.1.lora_a"][index] @ p["lora.1.lora_b"][index])
    assert rel_error(host(out), expected.detach().numpy()) < 1e-12
    grads = torch_grads(expected, dout, tx, *p.values())
    assert rel_error(host(dx), grads[0]) < 1e-10
    ours = layer.gradients()
    for name, theirs in zip(p, grads[1:]):
        assert rel_error(host(ours[name]), theirs) < 1e-10, name


@pytest.mark.parametrize("module", ["task-norm", "lora", "lora-ffn", "mmoe"])
@pytest.mark.parametrize("norm_first", [True, False])
def test_blocks_with_a_task_module(module, norm_first):
    lora_ffn = module == "lora-ffn"
    module = "lora" if lora_ffn else module
    task = TaskOptions(module, T, lora_rank=2, num_experts=2, norm_embed_dim=3, lora_ffn=lora_ffn)
    block = randomize(TransformerBlock(D, 2, 8, init_rng(0), norm_first=norm_first, dtype=F64, task=task), seed=7)
    mask = backend.to_device(np.arange(5)[None, :] < np.array([5, 3, 1, 4])[:, None])[:, None, None, :]
    check_layer(block, lambda x, tasks: block(x, mask=mask, tasks=tasks),
                {"x": randn(4, 5, D, seed=8), "tasks": TASKS}, name=f"block {module} lora_ffn={lora_ffn} norm_first={norm_first}")


# --- the torch oracle ---------------------------------------------------------------

def test_task_layer_norm_agrees_with_torch():
    torch = torch_or_skip()
    layer = randomize(TaskLayerNorm(D, T, init_rng(0), embed_dim=3, dtype=F64), seed=9)
    x = randn(4, 5, D, seed=10, scale=2.0)
    out = layer(x, TASKS)
    dout = randn(*out.shape, seed=11)
    dx = layer.backward(dout)
    p = {k: to_torch(v) for k, v in layer.params.items()}
    tx, index = to_torch(x), torch.tensor(host(TASKS))
    e = p["task_embedding"][index]
    gamma, beta = 1 + e @ p["gamma_weight"], e @ p["beta_weight"]
    expected = torch.nn.functional.layer_norm(tx, (D,), eps=1e-5) * gamma[:, None] + beta[:, None]
    assert rel_error(host(out), expected.detach().numpy()) < 1e-12
    grads = torch_grads(expected, dout, tx, *p.values())
    assert rel_error(host(dx), grads[0]) < 1e-10
    for name, theirs in zip(p, grads[1:]):
        assert rel_error(host(layer.grads[name]), theirs) < 1e-10, name


def test_task_lora_agrees_with_torch():
    torch = torch_or_skip()
    layer = randomize(TaskLoRA(D, 4, T, 2, init_rng(0), dtype=F64), seed=12)
    x = randn(4, 5, D, seed=13)
    out = layer(x, TASKS)
    dout = randn(*out.shape, seed=14)
    dx = layer.backward(dout)
    a, b, tx, index = to_torch(layer.params["lora_a"]), to_torch(layer.params["lora_b"]), to_torch(x), \
        torch.tensor(host(TASKS))
    expected = tx @ a[index] @ b[index]
    assert rel_error(host(out), expected.detach().numpy()) < 1e-12
    gx, ga, gb = torch_grads(expected, dout, tx, a, b)
    assert max(rel_error(host(dx), gx), rel_error(host(layer.grads["lora_a"]), ga),
               rel_error(host(layer.grads["lora_b"]), gb)) < 1e-12


def test_mixture_of_experts_agrees_with_torch():
    torch = torch_or_skip()
    layer = randomize(experts_layer(2), seed=15)
    x = randn(4, 5, D, seed=16)
    out = layer(x, TASKS)
    dout = randn(*out.shape, seed=17)
    dx = layer.backward(dout)
    params = {k: to_torch(v) for k, v in layer.parameters().items()}
    tx, index = to_torch(x), torch.tensor(host(TASKS))
    gate = torch.softmax(tx @ params["gate_weight"][index] + params["gate_bias"][index][:, None], dim=-1)
    mixed = 0
    for e in range(2):
        w1, b1 = params[f"experts.{e}.linear1.weight"], params[f"experts.{e}.linear1.bias"]
        w2, b2 = params[f"experts.{e}.linear2.weight"], params[f"experts.{e}.linear2.bias"]
        mixed = mixed + gate[..., e:e + 1] * (torch.nn.functional.gelu(tx @ w1 + b1, approximate="tanh") @ w2 + b2)
    assert rel_error(host(out), mixed.detach().numpy()) < 1e-12
    grads = torch_grads(mixed, dout, tx, *params.values())
    assert rel_error(host(dx), grads[0]) < 1e-10
    ours = layer.gradients()
    for name, theirs in zip(params, grads[1:]):
        assert rel_error(host(ours[name]), theirs) < 1e-10, name


# --- what they are at the start, and the gate matrix --------------------------------------

def test_at_the_start_task_norm_is_a_layer_norm_lora_is_zero_and_the_gates_are_uniform():
    x = randn(4, 5, D, seed=18)
    norm = TaskLayerNorm(D, T, init_rng(0), dtype=F64)
    np.testing.assert_allclose(host(norm(x, TASKS)), host(LayerNorm(D, dtype=F64)(x)), rtol=1e-13, atol=1e-13)
    assert not np.any(host(TaskLoRA(D, 4, T, 2, init_rng(0), dtype=F64)(x, TASKS)))
    moe = experts_layer(3)
    mean = sum(host(expert(x)) for expert in moe.experts) / 3
    np.testing.assert_allclose(host(moe(x, TASKS)), mean, rtol=1e-12, atol=1e-12)


def test_gate_affinity_averages_each_tasks_real_positions():
    moe = randomize(experts_layer(2), seed=19)
    x = randn(4, 5, D, seed=20)
    moe(x, TASKS)
    mask = backend.to_device(np.arange(5)[None, :] < np.array([5, 3, 1, 4])[:, None])
    matrix, gates = host(moe.affinity(mask)), host(moe.gates)
    real = host(mask)
    np.testing.assert_allclose(matrix[0], gates[1][real[1]].mean(axis=0), rtol=1e-12)
    rows = np.concatenate([gates[n][real[n]] for n in (0, 2, 3)])
    np.testing.assert_allclose(matrix[2], rows.mean(axis=0), rtol=1e-12)
    assert not np.any(matrix[1])                                  # task 1: no example, a zero row
    np.testing.assert_allclose(matrix[[0, 2]].sum(axis=1), 1.0)   # each row is a distribution over experts


def test_a_block_with_a_task_module_needs_the_tasks():
    block = TransformerBlock(D, 2, 8, init_rng(0), dtype=F64, task=TaskOptions("lora", T))
    with pytest.raises(ValueError, match="needs tasks"):
        block(randn(2, 3, D))
    with pytest.raises(ValueError, match="task_module must be one of"):
        TaskOptions("adapter", T)
    with pytest.raises(ValueError, match="lora_ffn applies to task_module 'lora' only"):
        TaskOptions("mmoe", T, lora_ffn=True)
