"""FeedForward, TransformerBlock (pre-LN and post-LN) and Encoder: finite differences
of the input and every parameter, and torch.nn.TransformerEncoderLayer as the oracle."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.backend import init_rng
from tinymtt.gradcheck import rel_error
from tinymtt.nn import Encoder, FeedForward, TransformerBlock
from tinymtt.ops import causal_mask, padding_mask

from helpers import host, randn, to_torch, torch_or_skip
from layer_check import check_layer, randomize
from torch_copy import agreement, block_pairs, copy_weights, torch_gradients

F64 = "float64"


def lengths_mask(lengths, seq_len):
    return padding_mask(backend.to_device(np.array(lengths)), seq_len)


@pytest.mark.parametrize("activation_name", ["gelu", "relu"])
@pytest.mark.parametrize("shape", [(2, 3, 6), (1, 1, 4)])
def test_feedforward_gradients(activation_name, shape):
    layer = FeedForward(shape[-1], 10, init_rng(2), activation_name, dtype=F64)
    x = randn(*shape, seed=3)
    # ReLU has a kink at 0: a step of h = 2e-3 moves a pre-activation by at most
    # h·max(|x|, |W1|, 1) < 1e-2, so every pre-activation must be farther than that
    pre = host(layer.linear1(x))
    assert np.abs(pre).min() > 1e-2, np.abs(pre).min()
    check_layer(layer, layer.forward, {"x": x}, name=f"FeedForward({activation_name})")


def test_feedforward_rejects_an_unknown_activation():
    with pytest.raises(ValueError, match="activation must be one of"):
        FeedForward(4, 8, init_rng(0), "tanh")


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-LN", "post-LN"])
@pytest.mark.parametrize("mask_kind", [None, "padding", "causal"])
def test_block_gradients(norm_first, mask_kind):
    batch, seq_len, d_model = 2, 4, 8
    layer = randomize(TransformerBlock(d_model, 2, 12, init_rng(4), norm_first=norm_first, dtype=F64), seed=5, scale=0.1)
    mask = {None: None, "padding": lengths_mask([0, 3], seq_len), "causal": causal_mask(seq_len)}[mask_kind]
    check_layer(layer, lambda x: layer(x, mask), {"x": randn(batch, seq_len, d_model, seed=6)},
                name=f"TransformerBlock({'pre' if norm_first else 'post'}-LN, {mask_kind})")


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-LN", "post-LN"])
def test_encoder_gradients(norm_first):
    layer = randomize(Encoder(2, 4, 2, 6, init_rng(7), norm_first=norm_first, dtype=F64), seed=8, scale=0.1)
    mask = lengths_mask([3, 2], 3)
    check_layer(layer, lambda x: layer(x, mask), {"x": randn(2, 3, 4, seed=9)},
                name=f"Encoder(2 layers, {'pre' if norm_first else 'post'}-LN)")


def test_block_with_gelu_matches_pre_and_post_ln_formulas():
    """The two placements written out with the sub-layers: out = h + FFN(LN2(h)) etc."""
    x = randn(2, 3, 4, seed=10)
    for norm_first in (True, False):
        block = randomize(TransformerBlock(4, 2, 6, init_rng(11), norm_first=norm_first, dtype=F64), seed=12)
        out = host(block(x))
        if norm_first:
            h = host(x) + host(block.attn(block.norm1(x)))
            expected = h + host(block.ffn(block.norm2(backend.to_device(h))))
        else:
            h = host(block.norm1(x + block.attn(x)))
            hd = backend.to_device(h)
            expected = host(block.norm2(hd + block.ffn(hd)))
        np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-13)


# --- torch.nn.TransformerEncoderLayer as the oracle -------------------------------

@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-LN", "post-LN"])
@pytest.mark.parametrize("activation_name", ["gelu", "relu"])
@pytest.mark.parametrize("padded", [False, True], ids=["no-mask", "key-padding"])
def test_block_matches_torch_encoder_layer(norm_first, activation_name, padded):
    torch = torch_or_skip()
    batch, seq_len, d_model, heads, d_ff = 3, 5, 8, 2, 12
    block = randomize(TransformerBlock(d_model, heads, d_ff, init_rng(13), norm_first=norm_first,
                                       activation_name=activation_name, dtype=F64), seed=14, scale=0.1)
    activation = "relu" if activation_name == "relu" else (
        lambda t: torch.nn.functional.gelu(t, approximate="tanh"))
    reference = torch.nn.TransformerEncoderLayer(d_model, heads, d_ff, dropout=0.0, activation=activation,
                                                 batch_first=True, norm_first=norm_first,
                                                 dtype=torch.float64).eval()
    copy_weights(block, reference, block_pairs(), d_model)
    x = randn(batch, seq_len, d_model, seed=15)
    mask, kwargs = None, {}
    if padded:
        # every example keeps a real token: an example with none gives NaN in torch
        real = np.arange(seq_len)[None, :] < np.array([seq_len, 2, 1])[:, None]
        mask = padding_mask(backend.to_device(real), seq_len)
        kwargs["src_key_padding_mask"] = torch.tensor(~real)   # torch: True = IGNORE
    out = block(x, mask)
    g = randn(*out.shape, seed=16)
    dx = block.backward(g)

    tx = to_torch(x)
    tout = reference(tx, **kwargs)
    (tout * torch.tensor(host(g))).sum().backward()
    errors = {"out": rel_error(out, tout.detach().numpy()), "dx": rel_error(dx, tx.grad.numpy())}
    errors.update(agreement(block.gradients(), torch_gradients(reference, block_pairs(), d_model)))
    worst = max(errors.values())
    print(f"\ntorch block {'pre' if norm_first else 'post'}-LN/{activation_name}/padded={padded}: "
          f"max rel. error {worst:.2e} ({max(errors, key=errors.get)})")
    assert worst <= 1e-9, errors


def test_block_float32_matches_float64():
    x64 = randn(2, 4, 8, seed=17)
    outs = {}
    for dtype in ("float64", "float32"):
        block = TransformerBlock(8, 2, 12, init_rng(18), dtype=dtype)
        outs[dtype] = block(x64.astype(dtype), lengths_mask([4, 2], 4))
    assert outs["float32"].dtype == np.float32
    np.testing.assert_allclose(host(outs["float32"]), host(outs["float64"]), rtol=1e-4, atol=1e-5)
