"""The small layers (Linear, Embedding, LayerNorm, Dropout, ReLU, GELU) and the Module
contract every layer follows: accumulation, zero_grad, backward before forward,
dotted names, train/eval propagation, float32 in -> float32 out."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.backend import init_rng
from tinymtt.nn import (GELU, Dropout, Embedding, Encoder, FeedForward, LayerNorm, Linear,
                        MultiHeadAttention, ReLU, RegressionHead, SequenceClassificationHead,
                        TaskAttention, TaskEncoder, TokenClassificationHead, TransformerBlock)
from tinymtt.ops import padding_mask

from helpers import host, randint, randn
from layer_check import check_layer, randomize

F64 = "float64"


# --- finite differences ------------------------------------------------------

@pytest.mark.parametrize("shape, out_features, bias", [
    ((2, 3, 5), 4, True), ((2, 3, 5), 4, False), ((4, 3), 2, True), ((1, 1, 3), 1, True)])
def test_linear_gradients(shape, out_features, bias):
    layer = Linear(shape[-1], out_features, init_rng(0), bias=bias, dtype=F64)
    assert ("bias" in layer.params) == bias
    check_layer(layer, layer.forward, {"x": randn(*shape, seed=1)}, name=f"Linear(bias={bias})")


def test_embedding_gradients_with_repeated_ids():
    layer = Embedding(6, 4, init_rng(0), dtype=F64)
    ids = backend.to_device(np.array([[1, 2, 1], [3, 1, 1]]))   # id 1 four times; 0, 4, 5 unused
    check_layer(layer, layer.forward, {"ids": ids}, name="Embedding")
    grad = host(layer.grads["weight"])
    assert np.all(grad[[0, 4, 5]] == 0) and np.all(grad[1] != 0)


def test_embedding_accumulates_repeated_ids_exactly():
    layer = Embedding(4, 3, init_rng(0), dtype=F64)
    ids = backend.to_device(np.array([[2, 2, 2]]))
    layer(ids)
    g = randn(1, 3, 3, seed=2)
    assert layer.backward(g) is None        # ids have no gradient
    np.testing.assert_allclose(host(layer.grads["weight"])[2], host(g)[0].sum(axis=0), rtol=1e-15)


@pytest.mark.parametrize("shape", [(2, 3, 6), (1, 1, 4), (5, 3)])
def test_layernorm_gradients(shape):
    layer = randomize(LayerNorm(shape[-1], dtype=F64), seed=3)   # γ ≠ 1, β ≠ 0
    check_layer(layer, layer.forward, {"x": randn(*shape, seed=4)}, name="LayerNorm")


def test_gelu_and_relu_layer_gradients():
    x = host(randn(2, 3, 4, seed=5))
    x = backend.to_device(x + 0.1 * np.sign(x))   # ReLU: every input at least 0.1 from the kink
    for layer, name in ((GELU(), "GELU"), (ReLU(), "ReLU")):
        check_layer(layer, layer.forward, {"x": x}, name=name)


# --- dropout -----------------------------------------------------------------

def test_dropout_is_identity_in_eval_mode():
    layer = Dropout(0.5, seed=1).eval()
    x = randn(3, 4, 5, seed=6)
    np.testing.assert_array_equal(host(layer(x)), host(x))
    g = randn(3, 4, 5, seed=7)
    np.testing.assert_array_equal(host(layer.backward(g)), host(g))


def test_dropout_differs_between_training_calls_and_backward_uses_the_forward_mask():
    p = 0.5
    layer = Dropout(p, seed=1)
    x = randn(4, 5, 6, seed=8)
    first = host(layer(x))
    second = host(layer(x))
    assert not np.array_equal(first, second)
    ratio = second / host(x)                 # the mask of the latest call, keep/(1-p) or 0
    assert set(np.unique(np.round(ratio, 12))) <= {0.0, 1 / (1 - p)}
    assert 0.3 < (ratio == 0).mean() < 0.7
    g = randn(4, 5, 6, seed=9)
    np.testing.assert_allclose(host(layer.backward(g)), host(g) * ratio, rtol=1e-12)


def test_dropout_rejects_a_bad_rate():
    with pytest.raises(ValueError, match="dropout"):
        Dropout(1.0)


# --- the Module contract, for every layer -------------------------------------

def _mask(batch, seq_len):
    return padding_mask(backend.to_device(np.arange(seq_len)[None, :] < np.array([seq_len, 2])[:, None]), seq_len)


def _head_run(head, x, targets):
    mask = backend.to_device(np.array([[True, True, True], [True, True, False]]))
    present = backend.to_device(np.array([True, False]))
    return head.loss(head.forward(x, mask), targets, mask, present)


# name -> (make(rng, dtype), run(layer, x), input shape)
def _layers():
    return {
        "Linear": (lambda rng, dt: Linear(4, 3, rng, dtype=dt), lambda m, x: m(x), (2, 3, 4)),
        "LayerNorm": (lambda rng, dt: randomize(LayerNorm(4, dtype=dt)), lambda m, x: m(x), (2, 3, 4)),
        "GELU": (lambda rng, dt: GELU(), lambda m, x: m(x), (2, 3, 4)),
        "FeedForward": (lambda rng, dt: FeedForward(4, 6, rng, dtype=dt), lambda m, x: m(x), (2, 3, 4)),
        "MultiHeadAttention": (lambda rng, dt: MultiHeadAttention(4, 2, rng, dtype=dt),
                               lambda m, x: m(x, mask=_mask(2, 3)), (2, 3, 4)),
        "TransformerBlock": (lambda rng, dt: TransformerBlock(4, 2, 6, rng, dtype=dt),
                             lambda m, x: m(x, _mask(2, 3)), (2, 3, 4)),
        "PostLNBlock": (lambda rng, dt: TransformerBlock(4, 2, 6, rng, norm_first=False, dtype=dt),
                        lambda m, x: m(x, _mask(2, 3)), (2, 3, 4)),
        "Encoder": (lambda rng, dt: Encoder(2, 4, 2, 6, rng, dtype=dt), lambda m, x: m(x, _mask(2, 3)), (2, 3, 4)),
        "TaskAttention": (lambda rng, dt: randomize(TaskAttention(4, 2, 3, rng, dtype=dt)),
                          lambda m, x: m(x), (2, 3, 2, 4)),
        "TokenHead": (lambda rng, dt: TokenClassificationHead(4, 3, rng, dtype=dt),
                      lambda m, x: _head_run(m, x, backend.to_device(np.array([[0, 2, 1], [1, 1, 0]]))), (2, 3, 4)),
        "SequenceHead": (lambda rng, dt: SequenceClassificationHead(4, 3, rng, dtype=dt),
                         lambda m, x: _head_run(m, x, backend.to_device(np.array([2, 0]))), (2, 3, 4)),
        "RegressionHead": (lambda rng, dt: RegressionHead(4, 2, rng, dtype=dt),
                           lambda m, x: _head_run(m, x, randn(2, 2, seed=3, dtype=np.dtype(x.dtype))), (2, 3, 4)),
    }


LAYERS = _layers()


@pytest.mark.parametrize("name", list(LAYERS))
def test_backward_accumulates_and_zero_grad_resets(name):
    make, run, shape = LAYERS[name]
    layer = make(init_rng(0), F64)
    x = randn(*shape, seed=10)
    out = run(layer, x)
    g = randn(*np.shape(out), seed=11)
    dx1 = host(layer.backward(g))
    once = {k: host(v).copy() for k, v in layer.gradients().items()}
    out_again = run(layer, x)
    np.testing.assert_array_equal(host(out_again), host(out))
    dx2 = host(layer.backward(g))
    np.testing.assert_array_equal(dx2, dx1)               # the input gradient is not accumulated
    for k, v in layer.gradients().items():
        np.testing.assert_allclose(host(v), 2 * once[k], rtol=1e-13, atol=0, err_msg=k)
    if once:
        assert any(np.any(v != 0) for v in once.values())
    layer.zero_grad()
    for k, v in layer.gradients().items():
        assert not np.any(host(v)), k


@pytest.mark.parametrize("name", list(LAYERS))
def test_backward_before_forward_is_a_clear_error(name):
    make, _, shape = LAYERS[name]
    layer = make(init_rng(0), F64)
    message = "before loss" if name.endswith("Head") else f"{type(layer).__name__}.backward was called before forward"
    with pytest.raises(RuntimeError, match=message):
        layer.backward(randn(*shape, seed=12))


def test_embedding_and_dropout_backward_before_forward():
    with pytest.raises(RuntimeError, match="Embedding.backward was called before forward"):
        Embedding(3, 2, init_rng(0)).backward(randn(1, 2, 2))
    with pytest.raises(RuntimeError, match="Dropout.backward was called before forward"):
        Dropout(0.1).backward(randn(1, 2, 2))
    with pytest.raises(RuntimeError, match="TaskEncoder.backward was called before forward"):
        TaskEncoder(2, 4, init_rng(0)).backward(randn(1, 4))


@pytest.mark.parametrize("name", list(LAYERS))
def test_parameters_and_gradients_have_the_same_names_and_shapes(name):
    make, _, _ = LAYERS[name]
    layer = make(init_rng(0), F64)
    params, grads = layer.parameters(), layer.gradients()
    assert list(params) == list(grads)
    for k in params:
        assert params[k].shape == grads[k].shape and grads[k].dtype == params[k].dtype, k
        assert params[k] is not grads[k]
    assert layer.num_parameters() == sum(p.size for p in params.values())


def test_encoder_parameter_names_are_dotted_paths():
    encoder = Encoder(2, 4, 2, 6, init_rng(0), dtype=F64)
    names = set(encoder.parameters())
    for expected in ("blocks.0.attn.wq.weight", "blocks.0.attn.wk.bias", "blocks.1.attn.wo.weight",
                     "blocks.0.norm1.gamma", "blocks.1.norm2.beta", "blocks.0.ffn.linear1.weight",
                     "blocks.1.ffn.linear2.bias", "final_norm.gamma", "final_norm.beta"):
        assert expected in names, expected
    per_block = 4 * (4 * 4 + 4) + 2 * 2 * 4 + (4 * 6 + 6) + (6 * 4 + 4)
    assert encoder.num_parameters() == 2 * per_block + 2 * 4
    post = Encoder(2, 4, 2, 6, init_rng(0), norm_first=False, dtype=F64)
    assert not any(k.startswith("final_norm") for k in post.parameters())
    # the names address the very arrays the layers compute with
    encoder.parameters()["blocks.1.attn.wq.weight"][0, 0] = 42.0
    assert encoder.blocks[1].attn.wq.params["weight"][0, 0] == 42.0


def test_train_and_eval_propagate_to_every_sublayer():
    encoder = Encoder(2, 4, 2, 6, init_rng(0), dropout=0.3, dtype=F64)

    def modes(layer):
        yield layer.training
        for _, child in layer.children():
            yield from modes(child)

    assert all(modes(encoder))
    assert encoder.eval() is encoder
    assert not any(modes(encoder))
    encoder.train()
    assert all(modes(encoder))
    x = randn(2, 3, 4, seed=13)
    assert not np.array_equal(host(encoder(x)), host(encoder(x)))   # dropout draws a new mask per call
    encoder.eval()
    np.testing.assert_array_equal(host(encoder(x)), host(encoder(x)))


def test_evaluating_is_eval_mode_for_a_block_and_restores_the_mode_even_after_an_error():
    encoder = Encoder(1, 4, 2, 6, init_rng(0), dropout=0.3, dtype=F64)
    with encoder.evaluating() as inside:
        assert inside is encoder and not encoder.training and not encoder.blocks[0].dropout1.training
    assert encoder.training and encoder.blocks[0].dropout1.training
    encoder.eval()
    with pytest.raises(KeyError):
        with encoder.evaluating():
            raise KeyError("inside the block")
    assert not encoder.training                                     # it was in eval mode before: still is
    encoder.train()
    with pytest.raises(KeyError):
        with encoder.evaluating():
            raise KeyError("inside the block")
    assert encoder.training and encoder.blocks[0].attn.training


@pytest.mark.parametrize("name", list(LAYERS))
def test_float32_in_float32_out(name):
    make, run, shape = LAYERS[name]
    layer = make(init_rng(0), "float32")
    x = randn(*shape, seed=14, dtype=np.float32)
    out = run(layer, x)
    assert out.dtype == np.float32
    dx = layer.backward(randn(*np.shape(out), seed=15, dtype=np.float32))
    assert dx.dtype == np.float32
    for k, v in layer.gradients().items():
        assert v.dtype == np.float32, k
        assert np.all(np.isfinite(host(v))), k


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="in_features"):
        Linear(0, 3, init_rng(0))
    with pytest.raises(ValueError, match="num_embeddings"):
        Embedding(2.5, 3, init_rng(0))
    with pytest.raises(ValueError, match="dim"):
        LayerNorm(-1)
    with pytest.raises(ValueError, match="x's last axis must equal w's first"):
        Linear(3, 2, init_rng(0), dtype=F64)(randn(2, 4))
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 3\)"):
        Embedding(3, 2, init_rng(0), dtype=F64)(randint(0, 5, (2, 3), seed=1) + 3)


# --- the checker itself can fail ---------------------------------------------------

class _BiasTwice(Linear):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["bias"] += dout.reshape(-1, dout.shape[-1]).sum(axis=0) * 1e-6   # a tiny bug
        return dx


class _WritesIntoDout(ReLU):
    def backward(self, dout):
        dx = super().backward(dout)
        dout *= 1.0 + 1e-9
        return dx


def test_check_layer_catches_a_wrong_parameter_gradient_and_a_mutated_dout():
    layer = _BiasTwice(3, 2, init_rng(0), dtype=F64)
    with pytest.raises(AssertionError, match="bias"):
        check_layer(layer, layer.forward, {"x": randn(2, 3, seed=1)}, name="mutant Linear")
    layer = _WritesIntoDout()
    with pytest.raises(AssertionError, match="upstream"):
        check_layer(layer, layer.forward, {"x": randn(2, 3, seed=1) + 0.5}, name="mutant ReLU")
