"""Split heads (B, S, D) -> (B, H, S, Dh) and merge them back: permutations, checked
by hand, by finite differences and against torch's reshape/permute."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import check_op, rel_error
from tinymtt.ops.split_heads import (merge_heads_backward, merge_heads_forward, split_heads_backward,
                               split_heads_forward)
from helpers import host, randn, to_torch, torch_grads, torch_or_skip

# (B, S, D, H): batch 1, a single head, sequence 1, one feature per head
SHAPES = [(2, 3, 8, 4), (1, 4, 6, 2), (2, 5, 4, 1), (3, 1, 6, 3), (1, 1, 3, 3)]


@pytest.mark.parametrize("batch, seq_len, d_model, num_heads", SHAPES)
def test_split_places_each_feature_slice_in_its_head(batch, seq_len, d_model, num_heads):
    head_dim = d_model // num_heads
    x = backend.to_device(np.arange(batch * seq_len * d_model, dtype=np.float64).reshape(batch, seq_len, d_model))
    out, _ = split_heads_forward(x, num_heads)
    assert out.shape == (batch, num_heads, seq_len, head_dim)
    expected = np.empty((batch, num_heads, seq_len, head_dim))
    for h in range(num_heads):  # the definition, written the slow way on purpose
        expected[:, h] = host(x)[:, :, h * head_dim:(h + 1) * head_dim]
    np.testing.assert_array_equal(host(out), expected)


@pytest.mark.parametrize("batch, seq_len, d_model, num_heads", SHAPES)
def test_split_then_merge_is_identity_both_ways(batch, seq_len, d_model, num_heads):
    x = randn(batch, seq_len, d_model, seed=1)
    heads, _ = split_heads_forward(x, num_heads)
    merged, _ = merge_heads_forward(heads)
    np.testing.assert_array_equal(host(merged), host(x))
    y = randn(batch, num_heads, seq_len, d_model // num_heads, seed=2)
    split, _ = split_heads_forward(merge_heads_forward(y)[0], num_heads)
    np.testing.assert_array_equal(host(split), host(y))


@pytest.mark.parametrize("batch, seq_len, d_model, num_heads", SHAPES)
def test_backward_is_the_inverse_permutation(batch, seq_len, d_model, num_heads):
    x = randn(batch, seq_len, d_model, seed=3)
    heads, split_cache = split_heads_forward(x, num_heads)
    merged, merge_cache = merge_heads_forward(heads)
    g = randn(*merged.shape, seed=4)
    # merge∘split is the identity, so its backward must be too
    np.testing.assert_array_equal(host(split_heads_backward(merge_heads_backward(g, merge_cache), split_cache)),
                                  host(g))


@pytest.mark.parametrize("batch, seq_len, d_model, num_heads", SHAPES)
def test_split_heads_gradient(batch, seq_len, d_model, num_heads):
    result = check_op(split_heads_forward, split_heads_backward, {"x": randn(batch, seq_len, d_model, seed=5)},
                      wrt=["x"], kwargs={"num_heads": num_heads})
    assert result.passed, result.report()
    assert result.worst <= 1e-7


@pytest.mark.parametrize("batch, seq_len, d_model, num_heads", SHAPES)
def test_merge_heads_gradient(batch, seq_len, d_model, num_heads):
    x = randn(batch, num_heads, seq_len, d_model // num_heads, seed=6)
    result = check_op(merge_heads_forward, merge_heads_backward, {"x": x}, wrt=["x"])
    assert result.passed, result.report()
    assert result.worst <= 1e-7


@pytest.mark.parametrize("batch, seq_len, d_model, num_heads", SHAPES)
def test_split_and_merge_match_torch(batch, seq_len, d_model, num_heads):
    torch_or_skip()
    head_dim = d_model // num_heads
    x = randn(batch, seq_len, d_model, seed=7)
    out, cache = split_heads_forward(x, num_heads)
    g = randn(*out.shape, seed=8)
    tx = to_torch(x)
    t_out = tx.reshape(batch, seq_len, num_heads, head_dim).permute(0, 2, 1, 3)
    (t_dx,) = torch_grads(t_out, g, tx)
    assert rel_error(out, t_out.detach().numpy()) <= 1e-9
    assert rel_error(split_heads_backward(g, cache), t_dx) <= 1e-9

    y = randn(batch, num_heads, seq_len, head_dim, seed=9)
    out, cache = merge_heads_forward(y)
    g = randn(*out.shape, seed=10)
    ty = to_torch(y)
    t_out = ty.permute(0, 2, 1, 3).reshape(batch, seq_len, d_model)
    (t_dy,) = torch_grads(t_out, g, ty)
    assert rel_error(out, t_out.detach().numpy()) <= 1e-9
    assert rel_error(merge_heads_backward(g, cache), t_dy) <= 1e-9


def test_backward_does_not_mutate_dout():
    x = randn(2, 3, 8, seed=11)
    heads, split_cache = split_heads_forward(x, 2)
    merged, merge_cache = merge_heads_forward(heads)
    for backward, dout, cache in ((split_heads_backward, randn(*heads.shape, seed=12), split_cache),
                                  (merge_heads_backward, randn(*merged.shape, seed=13), merge_cache)):
        before = host(dout).copy()
        backward(dout, cache)
        np.testing.assert_array_equal(host(dout), before)


def test_float32_is_preserved():
    x = randn(2, 3, 8, seed=14, dtype=np.float32)
    heads, split_cache = split_heads_forward(x, 4)
    merged, merge_cache = merge_heads_forward(heads)
    assert heads.dtype == merged.dtype == np.float32
    dheads = merge_heads_backward(randn(*merged.shape, seed=15, dtype=np.float32), merge_cache)
    dx = split_heads_backward(dheads, split_cache)
    assert dheads.dtype == dx.dtype == np.float32


def test_split_rejects_width_not_divisible_by_num_heads():
    with pytest.raises(ValueError, match=r"num_heads = 4") as info:
        split_heads_forward(randn(2, 3, 6), 4)
    assert "D = 6" in str(info.value)


@pytest.mark.parametrize("num_heads", [0, -2, 2.0, True, None])
def test_split_rejects_bad_num_heads(num_heads):
    with pytest.raises(ValueError, match="num_heads"):
        split_heads_forward(randn(2, 3, 6), num_heads)


@pytest.mark.parametrize("shape", [(3, 6), (2, 3, 6, 1)])
def test_split_rejects_x_that_is_not_3d(shape):
    with pytest.raises(ValueError, match=r"x must have 3 dimensions"):
        split_heads_forward(randn(*shape), 2)


def test_split_rejects_non_array():
    with pytest.raises(TypeError, match="x must be"):
        split_heads_forward([[[1.0, 2.0]]], 2)


@pytest.mark.parametrize("shape", [(2, 3, 6), (2, 2, 3, 4, 1)])
def test_merge_rejects_x_that_is_not_4d(shape):
    with pytest.raises(ValueError, match=r"x must have 4 dimensions"):
        merge_heads_forward(randn(*shape))


def test_backward_rejects_dout_of_the_wrong_shape():
    _, split_cache = split_heads_forward(randn(2, 3, 8), 2)
    with pytest.raises(ValueError, match="dout"):
        split_heads_backward(randn(2, 3, 8), split_cache)
    _, merge_cache = merge_heads_forward(randn(2, 2, 3, 4))
    with pytest.raises(ValueError, match="dout"):
        merge_heads_backward(randn(2, 2, 3, 4), merge_cache)
