"""Embedding lookup and the sinusoidal positional encoding."""

import math

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import check_op, rel_error
from tinymtt.ops import embedding_backward, embedding_forward, positional_encoding
from tinymtt.validation import ShapeError

from helpers import host, randint, randn, to_torch, torch_grads, torch_or_skip

# (ids shape, V, D): batch 1, sequence 1, a flat list of ids, a 3-d id array,
# and a vocabulary smaller than the number of ids (so ids must repeat).
# out is exactly linear in the table, so central differences have no truncation
# error at any step h; a large step shrinks their rounding noise (~1e-16·|f|/h),
# which at the default h = 1e-6 approaches 1e-7 relative on the small entries.
LINEAR_STEP = 1e-3

SHAPES = [((2, 5), 7, 4), ((1, 1), 3, 2), ((6,), 4, 3), ((2, 3, 2), 5, 1), ((3, 8), 2, 5)]


@pytest.mark.parametrize("ids_shape, vocab, dim", SHAPES)
def test_embedding_forward_picks_rows(ids_shape, vocab, dim):
    ids = randint(0, vocab, ids_shape, seed=1)
    table = randn(vocab, dim, seed=2)
    out, _ = embedding_forward(ids, table)
    assert out.shape == ids_shape + (dim,)
    np.testing.assert_array_equal(host(out), host(table)[host(ids)])


@pytest.mark.parametrize("ids_shape, vocab, dim", SHAPES)
def test_embedding_gradcheck(ids_shape, vocab, dim):
    ids = randint(0, vocab, ids_shape, seed=3)
    table = randn(vocab, dim, seed=4)
    result = check_op(embedding_forward, embedding_backward, {"ids": ids, "table": table}, wrt=["table"],
                      h=LINEAR_STEP)
    assert result.passed, result.report()
    assert result.worst <= 1e-7


def test_repeated_ids_accumulate_like_a_loop():
    # id 2 three times, 0 twice, 1 and 3 never
    ids = backend.to_device(np.array([[0, 2, 2], [2, 0, 4]]), dtype=np.int64)
    table = randn(5, 3, seed=5)
    dout = randn(2, 3, 3, seed=6)
    _, cache = embedding_forward(ids, table)
    dtable = embedding_backward(dout, cache)

    expected = np.zeros((5, 3))
    ids_h, dout_h = host(ids), host(dout)
    for b in range(2):
        for s in range(3):
            expected[ids_h[b, s]] += dout_h[b, s]
    np.testing.assert_allclose(host(dtable), expected, rtol=1e-12, atol=1e-12)
    assert np.all(host(dtable)[[1, 3]] == 0)
    # a plain fancy-index assignment would keep one write: make sure the sums are real sums
    np.testing.assert_allclose(host(dtable)[2], dout_h[0, 1] + dout_h[0, 2] + dout_h[1, 0], rtol=1e-12)


@pytest.mark.parametrize("ids_shape, vocab, dim", SHAPES)
def test_embedding_matches_torch(ids_shape, vocab, dim):
    torch = torch_or_skip()
    ids = randint(0, vocab, ids_shape, seed=7)
    table = randn(vocab, dim, seed=8)
    dout = randn(*ids_shape, dim, seed=9)
    out, cache = embedding_forward(ids, table)
    dtable = embedding_backward(dout, cache)

    table_t = to_torch(table)
    out_t = torch.nn.functional.embedding(torch.tensor(host(ids)), table_t)
    (dtable_t,) = torch_grads(out_t, dout, table_t)
    assert rel_error(out, out_t.detach().numpy()) <= 1e-9
    assert rel_error(dtable, dtable_t) <= 1e-9


def test_embedding_float32_preserved():
    ids = randint(0, 6, (2, 4), seed=10)
    table = randn(6, 3, seed=11, dtype=np.float32)
    out, cache = embedding_forward(ids, table)
    dtable = embedding_backward(randn(2, 4, 3, seed=12, dtype=np.float32), cache)
    assert out.dtype == np.float32
    assert dtable.dtype == np.float32


@pytest.mark.parametrize("id_dtype", [np.int32, np.uint8])
def test_embedding_accepts_other_integer_ids(id_dtype):
    ids = randint(0, 6, (3, 2), seed=13, dtype=id_dtype)
    table = randn(6, 2, seed=14)
    out, cache = embedding_forward(ids, table)
    np.testing.assert_array_equal(host(out), host(table)[host(ids)])
    dtable = embedding_backward(randn(3, 2, 2, seed=15), cache)
    assert dtable.shape == (6, 2)


def test_embedding_backward_does_not_mutate_dout():
    ids = randint(0, 3, (4, 5), seed=16)
    _, cache = embedding_forward(ids, randn(3, 2, seed=17))
    dout = randn(4, 5, 2, seed=18)
    before = host(dout).copy()
    embedding_backward(dout, cache)
    np.testing.assert_array_equal(host(dout), before)


@pytest.mark.parametrize("bad, value", [(7, 7), (100, 100), (-1, -1)])
def test_embedding_rejects_out_of_range_ids(bad, value):
    ids = backend.to_device(np.array([[0, 1], [bad, 2]]), dtype=np.int64)
    with pytest.raises(ShapeError, match=rf"ids must lie in \[0, 7\).*got a value {value}"):
        embedding_forward(ids, randn(7, 3))


def test_embedding_rejects_float_ids():
    with pytest.raises(TypeError, match="ids must be an integer array.*float64"):
        embedding_forward(randn(2, 3), randn(7, 3))


def test_embedding_rejects_bad_table():
    ids = randint(0, 3, (2, 2))
    with pytest.raises(TypeError, match="table must be a floating-point array"):
        embedding_forward(ids, randint(0, 3, (3, 4)))
    with pytest.raises(ShapeError, match=r"table must have 2 dimensions.*\(3, 4, 1\)"):
        embedding_forward(ids, randn(3, 4, 1))
    with pytest.raises(TypeError, match="ids must be a NumPy or CuPy array.*list"):
        embedding_forward([[0, 1]], randn(3, 4))


# ---------------------------------------------------------------- positional encoding


def test_positional_encoding_row_zero_is_sin0_cos0():
    table = host(positional_encoding(1, 6))
    np.testing.assert_array_equal(table, [[0, 1, 0, 1, 0, 1]])


def test_positional_encoding_known_values():
    table = host(positional_encoding(4, 4, dtype="float64"))
    # column pair 0 has frequency 1, column pair 1 has frequency 10000^(-2/4) = 1/100
    np.testing.assert_allclose(table[1], [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)], rtol=1e-15)
    np.testing.assert_allclose(table[3, :2], [0.1411200080598672, -0.9899924966004454], rtol=1e-14)


@pytest.mark.parametrize("seq_len, dim", [(1, 1), (5, 8), (7, 5), (50, 16)])
def test_positional_encoding_matches_hand_formula(seq_len, dim):
    table = host(positional_encoding(seq_len, dim, dtype="float64"))
    assert table.shape == (seq_len, dim)
    for pos in range(seq_len):
        for i in range((dim + 1) // 2):
            angle = pos / 10000 ** (2 * i / dim)
            assert table[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-14)
            if 2 * i + 1 < dim:   # an odd dim ends with a sine column
                assert table[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-14)


def test_positional_encoding_dtype_and_backend(xp):
    table = positional_encoding(9, 6)
    assert table.dtype == np.float32
    assert backend.array_module(table) is xp
    np.testing.assert_allclose(host(table), host(positional_encoding(9, 6, dtype="float64")), rtol=0, atol=1e-7)
    # an explicit module wins over the current backend
    assert isinstance(positional_encoding(2, 2, xp=np), np.ndarray)


def test_positional_encoding_long_sequences_stay_bounded():
    table = host(positional_encoding(10000, 32))
    assert np.all(np.isfinite(table)) and np.abs(table).max() <= 1.0
    # float64 angles: the float32 table equals the float64 one rounded once
    exact = host(positional_encoding(10000, 32, dtype="float64"))
    np.testing.assert_array_equal(table, exact.astype(np.float32))


@pytest.mark.parametrize("name, args", [("seq_len", (0, 4)), ("seq_len", (-2, 4)), ("seq_len", (2.0, 4)),
                                        ("seq_len", (True, 4)), ("dim", (3, 0)), ("dim", (3, "8"))])
def test_positional_encoding_rejects_bad_sizes(name, args):
    with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
        positional_encoding(*args)


def test_positional_encoding_rejects_integer_dtype():
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype"):
        positional_encoding(3, 4, dtype="int32")
