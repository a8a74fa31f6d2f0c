"""Scaled dot-product attention: finite differences, a torch oracle, masks that hide
whole rows, dropout, float32, stability and bad input."""

import math

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import check_op, rel_error
from tinymtt.ops.attention import attention_backward, attention_forward
from tinymtt.ops.masks import causal_mask, padding_mask

from helpers import host, randn, to_torch, torch_grads, torch_or_skip


def make_mask(kind, batch, heads, q_len, k_len, seed=0):
    """Masks by name: None, causal, padding (one example keeps a single key),
    random (some rows fully hidden), and a length-0 example (all rows hidden)."""
    if kind == "none":
        return None
    if kind == "causal":
        return causal_mask(q_len)
    if kind == "padding":
        lengths = [k_len - (b % 2) * (k_len - 1) for b in range(batch)]  # k_len, 1, k_len, ...
        return padding_mask(lengths, k_len)
    if kind == "padding_empty":
        return padding_mask([0] + [k_len] * (batch - 1), k_len)
    if kind == "random_rows":
        host_mask = np.random.default_rng(seed).random((batch, heads, q_len, k_len)) < 0.6
        host_mask[0, 0, 0, :] = False          # a query that may attend to nothing
        host_mask[-1, -1, -1, :] = True
        return backend.to_device(host_mask)
    raise ValueError(kind)


# (B, H, Sq, Sk, Dh, Dv, mask): batch 1, one head, Sq = Sk = 1, Sq != Sk, Dv != Dh
CASES = [
    (2, 3, 4, 4, 5, 5, "none"),
    (1, 1, 1, 1, 3, 3, "none"),
    (1, 2, 1, 1, 2, 2, "padding"),
    (2, 1, 3, 5, 4, 2, "none"),
    (2, 2, 5, 5, 3, 3, "causal"),
    (1, 1, 4, 4, 2, 2, "causal"),
    (3, 2, 4, 5, 3, 4, "padding"),
    (2, 2, 3, 4, 3, 3, "padding_empty"),
    (2, 3, 3, 5, 2, 3, "random_rows"),
    (1, 1, 5, 2, 3, 3, "random_rows"),
]
CASE_IDS = [f"B{c[0]}H{c[1]}Sq{c[2]}Sk{c[3]}Dh{c[4]}Dv{c[5]}-{c[6]}" for c in CASES]


def make_inputs(batch, heads, q_len, k_len, head_dim, value_dim, seed=0, dtype=np.float64):
    return (randn(batch, heads, q_len, head_dim, seed=seed, dtype=dtype),
            randn(batch, heads, k_len, head_dim, seed=seed + 1, dtype=dtype),
            randn(batch, heads, k_len, value_dim, seed=seed + 2, dtype=dtype))


def torch_attention(tq, tk, tv, mask, keep=None, dropout_p=0.0):
    """softmax(q·kᵀ/√d + additive -inf mask)·v, written out in torch. A fully masked
    row gets a 0 additive mask (so it stays finite) and is then zeroed."""
    torch = torch_or_skip()
    scores = tq @ tk.transpose(-1, -2) / math.sqrt(tq.shape[-1])
    if mask is not None:
        allowed = torch.tensor(np.broadcast_to(host(mask), scores.shape).copy())
        row_any = allowed.any(dim=-1, keepdim=True)
        additive = torch.where(allowed | ~row_any, 0.0, -math.inf).to(torch.float64)
        weights = torch.softmax(scores + additive, dim=-1)
        weights = torch.where(row_any, weights, torch.zeros((), dtype=torch.float64))
    else:
        weights = torch.softmax(scores, dim=-1)
    if keep is not None:
        weights = weights * torch.tensor(host(keep)) / (1.0 - dropout_p)
    return weights @ tv, weights


@pytest.mark.parametrize("batch, heads, q_len, k_len, head_dim, value_dim, mask_kind", CASES, ids=CASE_IDS)
def test_attention_gradient(batch, heads, q_len, k_len, head_dim, value_dim, mask_kind):
    q, k, v = make_inputs(batch, heads, q_len, k_len, head_dim, value_dim, seed=1)
    mask = make_mask(mask_kind, batch, heads, q_len, k_len)
    result = check_op(attention_forward, attention_backward, {"q": q, "k": k, "v": v},
                      wrt=["q", "k", "v"], kwargs={"mask": mask})
    assert result.passed, result.report()
    assert result.worst <= 1e-7


@pytest.mark.parametrize("mask_kind", ["none", "random_rows"])
def test_attention_gradient_with_dropout(mask_kind):
    """A fresh generator with the same seed on every call: one fixed dropout mask."""
    q, k, v = make_inputs(2, 2, 3, 4, 3, 3, seed=2)
    mask = make_mask(mask_kind, 2, 2, 3, 4)

    def forward(q, k, v):
        return attention_forward(q, k, v, mask, dropout_p=0.4, rng=backend.device_rng(7))

    _, cache = forward(q, k, v)
    assert 0 < int(host(cache.keep).sum()) < cache.keep.size  # the mask does drop something
    result = check_op(forward, attention_backward, {"q": q, "k": k, "v": v}, wrt=["q", "k", "v"])
    assert result.passed, result.report()
    assert result.worst <= 1e-7


@pytest.mark.parametrize("shape_q, shape_k", [((4, 3), (5, 3)), ((2, 4, 3), (2, 5, 3)),
                                              ((2, 2, 3, 2, 3), (2, 2, 3, 4, 3))])
def test_attention_gradient_other_leading_axes(shape_q, shape_k):
    q, k, v = randn(*shape_q, seed=3), randn(*shape_k, seed=4), randn(*shape_k, seed=5)
    result = check_op(attention_forward, attention_backward, {"q": q, "k": k, "v": v}, wrt=["q", "k", "v"])
    assert result.passed, result.report()
    assert result.worst <= 1e-7


@pytest.mark.parametrize("batch, heads, q_len, k_len, head_dim, value_dim, mask_kind", CASES, ids=CASE_IDS)
def test_attention_matches_explicit_torch(batch, heads, q_len, k_len, head_dim, value_dim, mask_kind):
    torch_or_skip()
    q, k, v = make_inputs(batch, heads, q_len, k_len, head_dim, value_dim, seed=4)
    mask = make_mask(mask_kind, batch, heads, q_len, k_len)
    out, cache = attention_forward(q, k, v, mask)
    g = randn(*out.shape, seed=5)
    tq, tk, tv = to_torch(q), to_torch(k), to_torch(v)
    t_out, t_weights = torch_attention(tq, tk, tv, mask)
    t_dq, t_dk, t_dv = torch_grads(t_out, g, tq, tk, tv)
    dq, dk, dv = attention_backward(g, cache)
    assert rel_error(out, t_out.detach().numpy()) <= 1e-9
    assert rel_error(cache.weights, t_weights.detach().numpy()) <= 1e-9
    assert rel_error(dq, t_dq) <= 1e-9
    assert rel_error(dk, t_dk) <= 1e-9
    assert rel_error(dv, t_dv) <= 1e-9


@pytest.mark.parametrize("batch, heads, q_len, k_len, head_dim, value_dim, mask_kind",
                         [c for c in CASES if c[-1] in ("none", "causal", "padding")],
                         ids=[i for c, i in zip(CASES, CASE_IDS) if c[-1] in ("none", "causal", "padding")])
def test_attention_matches_torch_sdpa(batch, heads, q_len, k_len, head_dim, value_dim, mask_kind):
    """torch's own fused op with a boolean attn_mask (True = may attend); no row is
    fully masked here, where torch would give NaN."""
    torch = torch_or_skip()
    q, k, v = make_inputs(batch, heads, q_len, k_len, head_dim, value_dim, seed=6)
    mask = make_mask(mask_kind, batch, heads, q_len, k_len)
    out, cache = attention_forward(q, k, v, mask)
    g = randn(*out.shape, seed=7)
    tq, tk, tv = to_torch(q), to_torch(k), to_torch(v)
    t_mask = None if mask is None else torch.tensor(host(mask))
    t_out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=t_mask)
    t_dq, t_dk, t_dv = torch_grads(t_out, g, tq, tk, tv)
    dq, dk, dv = attention_backward(g, cache)
    assert rel_error(out, t_out.detach().numpy()) <= 1e-9
    assert rel_error(dq, t_dq) <= 1e-9
    assert rel_error(dk, t_dk) <= 1e-9
    assert rel_error(dv, t_dv) <= 1e-9


def test_attention_with_dropout_matches_torch_with_the_same_keep_mask():
    torch_or_skip()
    q, k, v = make_inputs(2, 3, 4, 5, 3, 3, seed=8)
    mask = make_mask("random_rows", 2, 3, 4, 5)
    out, cache = attention_forward(q, k, v, mask, dropout_p=0.25, rng=backend.device_rng(3))
    g = randn(*out.shape, seed=9)
    tq, tk, tv = to_torch(q), to_torch(k), to_torch(v)
    t_out, _ = torch_attention(tq, tk, tv, mask, keep=cache.keep, dropout_p=0.25)
    t_grads = torch_grads(t_out, g, tq, tk, tv)
    assert rel_error(out, t_out.detach().numpy()) <= 1e-9
    for ours, theirs in zip(attention_backward(g, cache), t_grads):
        assert rel_error(ours, theirs) <= 1e-9


def test_fully_masked_rows_give_zero_output_and_finite_gradients():
    q, k, v = make_inputs(2, 2, 3, 4, 3, 3, seed=10)
    mask_host = np.ones((2, 2, 3, 4), dtype=bool)
    mask_host[0, 1, 2, :] = False   # one query of one head
    mask_host[1, :, :, :] = False   # a whole example
    out, cache = attention_forward(q, k, v, backend.to_device(mask_host))
    out_h, weights = host(out), host(cache.weights)
    assert np.all(out_h[0, 1, 2] == 0) and np.all(out_h[1] == 0)
    assert np.all(weights[0, 1, 2] == 0) and np.all(weights[1] == 0)
    rows = weights.sum(axis=-1)
    np.testing.assert_allclose(rows[mask_host.any(axis=-1)], 1.0, rtol=1e-12)
    dq, dk, dv = (host(a) for a in attention_backward(randn(*out.shape, seed=11), cache))
    for grad in (dq, dk, dv):
        assert np.all(np.isfinite(grad))
    assert np.all(dq[0, 1, 2] == 0) and np.all(dq[1] == 0)
    assert np.all(dk[1] == 0) and np.all(dv[1] == 0)
    assert np.any(dq[0] != 0)


def test_masked_keys_are_excluded():
    q, k, v = make_inputs(1, 2, 3, 4, 3, 3, seed=12)
    mask = padding_mask([2], 4)
    out, cache = attention_forward(q, k, v, mask)
    assert np.all(host(cache.weights)[..., 2:] == 0)
    # whatever sits behind the padding does not change the output
    k2, v2 = host(k).copy(), host(v).copy()
    k2[..., 2:, :] = 1e3
    v2[..., 2:, :] = -7.0
    out2, _ = attention_forward(q, backend.to_device(k2), backend.to_device(v2), mask)
    np.testing.assert_array_equal(host(out2), host(out))
    unmasked, _ = attention_forward(q, k[..., :2, :], v[..., :2, :])
    np.testing.assert_allclose(host(out), host(unmasked), rtol=1e-12, atol=1e-15)


def test_dropout_drops_at_rate_p_and_rescales():
    q, k, v = make_inputs(4, 4, 16, 16, 4, 4, seed=13)
    out, cache = attention_forward(q, k, v, dropout_p=0.3, rng=backend.device_rng(0))
    keep = host(cache.keep)
    assert abs(1.0 - keep.mean() - 0.3) < 0.03
    expected = (host(cache.weights) * keep / 0.7) @ host(v)
    np.testing.assert_allclose(host(out), expected, rtol=1e-12, atol=1e-14)
    # the weights in the cache are pre-dropout: rows still sum to 1
    np.testing.assert_allclose(host(cache.weights).sum(axis=-1), 1.0, rtol=1e-12)
    again, _ = attention_forward(q, k, v, dropout_p=0.3, rng=backend.device_rng(0))
    np.testing.assert_array_equal(host(again), host(out))


def test_no_dropout_ignores_rng():
    q, k, v = make_inputs(2, 2, 3, 3, 2, 2, seed=14)
    plain, cache = attention_forward(q, k, v)
    with_rng, _ = attention_forward(q, k, v, dropout_p=0.0, rng=backend.device_rng(0))
    np.testing.assert_array_equal(host(plain), host(with_rng))
    assert cache.keep is None


def test_backward_does_not_mutate_dout():
    q, k, v = make_inputs(2, 2, 3, 4, 3, 3, seed=15)
    mask = make_mask("random_rows", 2, 2, 3, 4)
    out, cache = attention_forward(q, k, v, mask, dropout_p=0.2, rng=backend.device_rng(1))
    dout = randn(*out.shape, seed=16)
    before = host(dout).copy()
    attention_backward(dout, cache)
    np.testing.assert_array_equal(host(dout), before)


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_float32_is_preserved(dropout_p):
    q, k, v = make_inputs(2, 2, 3, 4, 3, 3, seed=17, dtype=np.float32)
    mask = make_mask("random_rows", 2, 2, 3, 4)
    out, cache = attention_forward(q, k, v, mask, dropout_p=dropout_p, rng=backend.device_rng(0))
    assert out.dtype == cache.weights.dtype == np.float32
    grads = attention_backward(randn(*out.shape, seed=18, dtype=np.float32), cache)
    assert all(g.dtype == np.float32 for g in grads)


@pytest.mark.filterwarnings("error")  # no overflow / invalid-value warnings either
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_scores_stay_finite(dtype):
    q, k, v = make_inputs(2, 2, 4, 5, 3, 3, seed=19, dtype=dtype)
    q = q * 1e4                      # scores ~1e8: a naive exp overflows
    mask = make_mask("random_rows", 2, 2, 4, 5)
    out, cache = attention_forward(q, k, v, mask)
    grads = attention_backward(randn(*out.shape, seed=20, dtype=dtype), cache)
    for a in (out, cache.weights, *grads):
        assert np.all(np.isfinite(host(a)))
    # nearly one-hot rows: the largest allowed score takes (almost) all the weight
    scores = np.where(host(mask), host(q) @ np.swapaxes(host(k), -1, -2), -np.inf)
    allowed_rows = host(mask).any(axis=-1)
    winners = scores.argmax(axis=-1)
    picked = np.take_along_axis(host(cache.weights), winners[..., None], axis=-1)[..., 0]
    assert np.all(picked[allowed_rows] > 0.99)


def test_large_scores_match_torch():
    torch_or_skip()
    q, k, v = make_inputs(2, 2, 3, 4, 3, 3, seed=21)
    q = q * 30.0
    mask = make_mask("padding", 2, 2, 3, 4)
    out, cache = attention_forward(q, k, v, mask)
    g = randn(*out.shape, seed=22)
    tq, tk, tv = to_torch(q), to_torch(k), to_torch(v)
    t_out, _ = torch_attention(tq, tk, tv, mask)
    t_grads = torch_grads(t_out, g, tq, tk, tv)
    assert rel_error(out, t_out.detach().numpy()) <= 1e-9
    for ours, theirs in zip(attention_backward(g, cache), t_grads):
        assert rel_error(ours, theirs) <= 1e-9


# ---------------------------------------------------------------- bad input

def test_rejects_wrong_ndim():
    q, k, v = make_inputs(2, 2, 3, 4, 3, 3)
    with pytest.raises(ValueError, match="q must have at least 2 dimensions"):
        attention_forward(randn(3), k, v)
    with pytest.raises(ValueError, match="leading axes"):
        attention_forward(q, k[0], v[0])
    with pytest.raises(ValueError, match="leading axes"):
        attention_forward(q, k[:1], v[:1])


def test_rejects_mismatched_head_width():
    q, k, v = make_inputs(2, 2, 3, 4, 3, 3)
    with pytest.raises(ValueError, match=r"q and k .* Dh"):
        attention_forward(q, randn(2, 2, 4, 5), v)


def test_rejects_mismatched_key_count():
    q, k, v = make_inputs(2, 2, 3, 4, 3, 3)
    with pytest.raises(ValueError, match=r"k and v .* Sk"):
        attention_forward(q, k, randn(2, 2, 5, 3))


def test_rejects_non_float_or_mixed_dtypes():
    q, k, v = make_inputs(2, 2, 3, 4, 3, 3)
    with pytest.raises(TypeError, match="k must be a floating-point array"):
        attention_forward(q, backend.to_device(np.ones((2, 2, 4, 3), dtype=np.int64)), v)
    with pytest.raises(TypeError, match="one dtype"):
        attention_forward(q, k.astype(np.float32), v)
    with pytest.raises(TypeError, match="v must be"):
        attention_forward(q, k, host(v).tolist())


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_rejects_non_bool_mask(dtype):
    q, k, v = make_inputs(2, 2, 3, 4, 3, 3)
    with pytest.raises(TypeError, match="mask must be a boolean array"):
        attention_forward(q, k, v, backend.to_device(np.ones((2, 1, 3, 4), dtype=dtype)))


@pytest.mark.parametrize("shape", [(2, 2, 3, 5), (3, 1, 1, 4), (4, 3), (1, 2, 2, 3, 4)])
def test_rejects_mask_that_does_not_broadcast_to_the_scores(shape):
    q, k, v = make_inputs(2, 2, 3, 4, 3, 3)
    with pytest.raises(ValueError, match=r"mask must broadcast .*\(2, 2, 3, 4\)"):
        attention_forward(q, k, v, backend.to_device(np.ones(shape, dtype=bool)))


@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 1, 1, 4), (1, 2, 3, 1)])
def test_accepts_masks_that_broadcast(shape):
    q, k, v = make_inputs(2, 2, 3, 4, 3, 3)
    out, cache = attention_forward(q, k, v, backend.to_device(np.ones(shape, dtype=bool)))
    reference, _ = attention_forward(q, k, v)
    np.testing.assert_array_equal(host(out), host(reference))


@pytest.mark.parametrize("dropout_p", [1.0, -0.1, "0.1", None])
def test_rejects_bad_dropout_p(dropout_p):
    q, k, v = make_inputs(2, 2, 3, 4, 3, 3)
    with pytest.raises(ValueError, match="dropout_p"):
        attention_forward(q, k, v, dropout_p=dropout_p, rng=backend.device_rng(0))


def test_rejects_dropout_without_rng():
    q, k, v = make_inputs(2, 2, 3, 4, 3, 3)
    with pytest.raises(ValueError, match="rng must be given"):
        attention_forward(q, k, v, dropout_p=0.1)


def test_rejects_rng_that_is_not_a_generator():
    q, k, v = make_inputs(2, 2, 3, 4, 3, 3)
    with pytest.raises(TypeError, match=r"rng must be a generator"):
        attention_forward(q, k, v, dropout_p=0.1, rng=7)


def test_backward_rejects_dout_of_the_wrong_shape():
    q, k, v = make_inputs(2, 2, 3, 4, 3, 3)
    _, cache = attention_forward(q, k, v)
    with pytest.raises(ValueError, match="dout"):
        attention_backward(randn(2, 2, 4, 3), cache)
