"""MultiHeadAttention as a layer: finite differences of the input(s) and all four
projections (self, padding that hides whole rows, causal, cross, one head, sequence 1),
and torch.nn.MultiheadAttention as the oracle."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.backend import init_rng
from tinymtt.nn import MultiHeadAttention
from tinymtt.ops import causal_mask, padding_mask

from helpers import host, randn, to_torch, torch_or_skip
from layer_check import check_layer
from torch_copy import agreement, copy_weights, mha_pairs, torch_gradients

F64 = "float64"


def lengths_mask(lengths, seq_len):
    return padding_mask(backend.to_device(np.array(lengths)), seq_len)


# (B, S, D, H, mask): a fully padded example (every row of batch 0 hidden), causal,
# padding & causal, one head, sequence 1
SELF_CASES = [
    (2, 4, 8, 2, None),
    (2, 4, 8, 2, "padding_empty"),
    (3, 4, 6, 3, "padding"),
    (2, 5, 8, 2, "causal"),
    (2, 4, 4, 2, "padding_causal"),
    (2, 3, 4, 1, None),
    (2, 1, 6, 2, None),
    (1, 1, 4, 1, "causal"),
]


def make_mask(kind, batch, seq_len):
    if kind is None:
        return None
    if kind == "padding_empty":
        return lengths_mask([0] + [seq_len - 1] * (batch - 1), seq_len)
    if kind == "padding":
        return lengths_mask([seq_len, 1, 2][:batch], seq_len)
    if kind == "causal":
        return causal_mask(seq_len)
    if kind == "padding_causal":
        return lengths_mask([2] + [seq_len] * (batch - 1), seq_len) & causal_mask(seq_len)
    raise ValueError(kind)


@pytest.mark.parametrize("batch, seq_len, d_model, heads, mask_kind", SELF_CASES,
                         ids=[f"B{c[0]}S{c[1]}D{c[2]}H{c[3]}-{c[4]}" for c in SELF_CASES])
def test_self_attention_gradients(batch, seq_len, d_model, heads, mask_kind):
    layer = MultiHeadAttention(d_model, heads, init_rng(1), dtype=F64)
    mask = make_mask(mask_kind, batch, seq_len)
    check_layer(layer, lambda x: layer(x, mask=mask), {"x": randn(batch, seq_len, d_model, seed=2)},
                name=f"MultiHeadAttention self ({mask_kind}, H={heads}, S={seq_len})")


def test_fully_masked_rows_give_the_output_bias_and_no_gradient():
    layer = MultiHeadAttention(4, 2, init_rng(1), dtype=F64)
    x = randn(2, 3, 4, seed=3)
    out = layer(x, mask=lengths_mask([0, 3], 3))
    assert np.all(np.isfinite(host(out)))
    np.testing.assert_array_equal(host(out)[0], np.broadcast_to(host(layer.wo.params["bias"]), (3, 4)))
    assert not np.any(host(layer.weights)[0])
    dx = host(layer.backward(randn(2, 3, 4, seed=4)))
    # batch 0's values and keys are unused; its queries reach the output only via the bias
    assert not np.any(dx[0])


@pytest.mark.parametrize("batch, q_len, k_len, heads, masked", [
    (2, 3, 5, 2, False), (2, 3, 5, 2, True), (1, 1, 4, 1, False), (2, 4, 1, 2, False)])
def test_cross_attention_gradients(batch, q_len, k_len, heads, masked):
    layer = MultiHeadAttention(6, heads, init_rng(5), dtype=F64)
    mask = lengths_mask([k_len, 2][:batch], k_len) if masked else None
    inputs = {"x": randn(batch, q_len, 6, seed=6), "context": randn(batch, k_len, 6, seed=7)}
    errors = check_layer(layer, lambda x, context: layer(x, context=context, mask=mask), inputs,
                         name=f"MultiHeadAttention cross (masked={masked})")
    assert {"dx", "dcontext"} <= set(errors)


def test_cross_attention_returns_two_gradients_and_self_one():
    layer = MultiHeadAttention(4, 2, init_rng(0), dtype=F64)
    x, context = randn(2, 3, 4, seed=1), randn(2, 5, 4, seed=2)
    layer(x, context=context)
    dx, dcontext = layer.backward(randn(2, 3, 4, seed=3))
    assert dx.shape == x.shape and dcontext.shape == context.shape
    layer(x)
    assert layer.backward(randn(2, 3, 4, seed=3)).shape == x.shape


def test_attention_weights_are_kept_for_plotting():
    layer = MultiHeadAttention(4, 2, init_rng(0), dtype=F64)
    layer(randn(2, 3, 4, seed=1), context=randn(2, 5, 4, seed=2))
    assert layer.weights.shape == (2, 2, 3, 5)
    np.testing.assert_allclose(host(layer.weights).sum(axis=-1), 1.0, rtol=1e-12)


def test_attention_dropout_is_random_in_training_and_off_in_eval():
    layer = MultiHeadAttention(4, 2, init_rng(0), dropout=0.5, dtype=F64)
    x = randn(2, 6, 4, seed=1)
    assert not np.array_equal(host(layer(x)), host(layer(x)))
    layer.eval()
    np.testing.assert_array_equal(host(layer(x)), host(layer(x)))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="d_model must be divisible by num_heads"):
        MultiHeadAttention(6, 4, init_rng(0))
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(6, 0, init_rng(0))
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(4, 2, init_rng(0), dropout=1.5)
    layer = MultiHeadAttention(4, 2, init_rng(0), dtype=F64)
    with pytest.raises(ValueError, match="x's last axis"):
        layer(randn(2, 3, 5))
    with pytest.raises(Exception, match="mask"):
        layer(randn(2, 3, 4), mask=backend.to_device(np.ones((2, 4), dtype=bool)))


# --- torch.nn.MultiheadAttention as the oracle ------------------------------------

TORCH_CASES = [("self", None), ("self", "padding"), ("self", "causal"), ("cross", None), ("cross", "padding")]


@pytest.mark.parametrize("kind, mask_kind", TORCH_CASES, ids=[f"{k}-{m}" for k, m in TORCH_CASES])
def test_matches_torch_multihead_attention(kind, mask_kind):
    torch = torch_or_skip()
    batch, q_len, d_model, heads = 3, 4, 8, 2
    k_len = q_len if kind == "self" else 5
    layer = MultiHeadAttention(d_model, heads, init_rng(7), dtype=F64)
    reference = torch.nn.MultiheadAttention(d_model, heads, batch_first=True, dtype=torch.float64).eval()
    copy_weights(layer, reference, mha_pairs(), d_model)
    x = randn(batch, q_len, d_model, seed=8)
    context = randn(batch, k_len, d_model, seed=9) if kind == "cross" else None
    lengths = [k_len, 2, 1]                        # every example keeps a key: torch gives NaN otherwise
    mask, torch_kwargs = None, {}
    if mask_kind == "padding":
        mask = lengths_mask(lengths, k_len)
        # torch's key_padding_mask: True = IGNORE; ours: True = may attend
        torch_kwargs["key_padding_mask"] = torch.tensor(~host(mask)[:, 0, 0, :])
    if mask_kind == "causal":
        mask = causal_mask(q_len)
        torch_kwargs["attn_mask"] = torch.tensor(~host(mask))
    out = layer(x, context=context, mask=mask)
    g = randn(*out.shape, seed=10)
    returned = layer.backward(g)
    dx, dcontext = returned if kind == "cross" else (returned, None)

    tx = to_torch(x)
    tc = to_torch(context) if kind == "cross" else tx
    tout, _ = reference(tx, tc, tc, need_weights=False, **torch_kwargs)
    (tout * torch.tensor(host(g))).sum().backward()
    errors = {"out": rel_error_host(out, tout.detach().numpy()), "dx": rel_error_host(dx, tx.grad.numpy())}
    if kind == "cross":
        errors["dcontext"] = rel_error_host(dcontext, tc.grad.numpy())
    errors.update(agreement(layer.gradients(), torch_gradients(reference, mha_pairs(), d_model)))
    worst = max(errors.values())
    print(f"\ntorch MHA {kind}/{mask_kind}: max rel. error {worst:.2e} ({max(errors, key=errors.get)})")
    assert worst <= 1e-9, errors


def rel_error_host(a, b):
    from tinymtt.gradcheck import rel_error
    return rel_error(host(a), b)
