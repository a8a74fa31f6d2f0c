"""backend.blockwise: the ops' kernels cut into blocks of rows, on several threads.

Each op runs its own math (the kernel) on blocks; the tests force many small
blocks (``BLOCK_ELEMENTS``) and two threads, and pin BLAS as the command line
does (so the linear layers' matmuls are cut too). Then every op must give what
one call on the whole arrays gives -- bit for bit for element-wise and row-wise
work, within float32 rounding for the matmuls -- and pass its float64 gradient
check through the blocked path.
"""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.gradcheck import check_op
from tinymtt.ops import (attention_backward, attention_forward, gelu_backward, gelu_forward, layernorm_backward,
                         layernorm_forward, linear_backward, linear_forward)

from helpers import randn


@pytest.fixture
def blocked(monkeypatch):
    """Many tiny blocks over two threads, BLAS pinned to one thread (as tinymtt.cli pins it)."""
    monkeypatch.setattr(backend, "BLOCK_ELEMENTS", 16)
    monkeypatch.setattr(backend, "PARALLEL_ELEMENTS", 0)
    monkeypatch.setattr(backend, "PARALLEL_ELEMENTS", 0)         # small test arrays go parallel too
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    with backend.threads(2):
        yield


def whole(function, *args):
    """``function`` run as one call: a block as large as any array, one thread."""
    saved = backend.BLOCK_ELEMENTS
    backend.BLOCK_ELEMENTS = 1 << 40
    try:
        with backend.threads(1):
            return function(*args)
    finally:
        backend.BLOCK_ELEMENTS = saved


def test_blocks_cover_every_row_once_on_several_threads(blocked):
    import threading
    x = np.arange(40.0).reshape(10, 4)
    out = np.zeros_like(x)
    seen = []

    def kernel(block, out_block, offset):
        seen.append((threading.get_ident(), len(block)))
        out_block += block + offset

    backend.blockwise(kernel, x, out, whole=(1.0,))
    assert np.array_equal(out, x + 1.0)                   # every row written once
    assert sorted(rows for _, rows in seen) == [2, 4, 4]  # 16 elements a block: 4 rows of 4
    assert len({ident for ident, _ in seen}) == 2         # both threads worked


def test_an_error_in_a_worker_thread_reaches_the_caller(blocked):
    def kernel(block):
        if block[0, 0] > 20:
            raise ArithmeticError("from a block")

    with pytest.raises(ArithmeticError, match="from a block"):
        backend.blockwise(kernel, np.arange(40.0).reshape(10, 4))


def test_mismatched_lengths_and_bad_thread_counts_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="one length along axis 0"):
        backend.blockwise(lambda a, b: None, np.zeros((4, 2)), np.zeros((3, 2)))
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(backend.BackendError, match="threads must be"):
            backend.threads(bad)
    monkeypatch.setattr(backend, "_thread_count", None)
    monkeypatch.setenv("TINYMTT_THREADS", "many")
    with pytest.raises(backend.BackendError, match="TINYMTT_THREADS"):
        backend.get_threads()
    monkeypatch.setenv("TINYMTT_THREADS", "3")
    assert backend.get_threads() == 3


def test_a_blas_kernel_is_cut_only_when_blas_is_pinned(monkeypatch):
    calls = []
    x = np.zeros((8, 2))
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(backend, "BLOCK_ELEMENTS", 8)
    monkeypatch.setattr(backend, "PARALLEL_ELEMENTS", 0)
    with backend.threads(2):
        backend.blockwise(lambda a: calls.append(len(a)), x, blas=True)
        assert calls == [8]                                # BLAS spreads it over its own threads
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
        calls.clear()
        backend.blockwise(lambda a: calls.append(len(a)), x, blas=True)
        assert sorted(calls) == [4, 4]                     # one block per thread
        calls.clear()
        backend.blockwise(lambda a: calls.append(len(a)), x[:7], blas=True)
        assert calls == [7]                                # too little work to be worth a thread


def test_ops_give_what_one_call_gives(blocked):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5, 12), dtype=np.float32) * 3
    for forward, backward, args in [
            (gelu_forward, gelu_backward, (x,)),
            (layernorm_forward, layernorm_backward, (x, rng.standard_normal(12, dtype=np.float32),
                                                     rng.standard_normal(12, dtype=np.float32)))]:
        out, cache = forward(*args)
        reference, reference_cache = whole(forward, *args)
        assert np.array_equal(out, reference), forward.__name__   # element- and row-wise: bit for bit
        g = rng.standard_normal(out.shape, dtype=np.float32)
        as_tuple = lambda grads: grads if isinstance(grads, tuple) else (grads,)  # noqa: E731
        for got, expected in zip(as_tuple(backward(g, cache)), as_tuple(whole(backward, g, reference_cache))):
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    q, k, v = (rng.standard_normal((6, 2, 5, 4), dtype=np.float32) for _ in range(3))
    mask = rng.random((6, 1, 1, 5)) > 0.3
    out, cache = attention_forward(q, k, v, mask)
    reference, reference_cache = whole(attention_forward, q, k, v, mask)
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(out.shape, dtype=np.float32)
    for got, expected in zip(attention_backward(g, cache), whole(attention_backward, g, reference_cache)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    w, b = rng.standard_normal((12, 7), dtype=np.float32), rng.standard_normal(7, dtype=np.float32)
    out, cache = linear_forward(x, w, b)
    np.testing.assert_allclose(out, x @ w + b, rtol=1e-5, atol=1e-5)
    g = rng.standard_normal(out.shape, dtype=np.float32)
    for got, expected in zip(linear_backward(g, cache), whole(linear_backward, g, cache)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["gelu", "layernorm", "attention", "attention_causal", "linear"])
def test_gradients_through_the_blocked_path(blocked, case):
    x = randn(4, 3, 6, seed=1, scale=2.0)
    if case == "gelu":
        result = check_op(gelu_forward, gelu_backward, {"x": x})
    elif case == "layernorm":
        result = check_op(layernorm_forward, layernorm_backward,
                          {"x": x, "gamma": randn(6, seed=2), "beta": randn(6, seed=3)})
    elif case == "linear":
        result = check_op(linear_forward, linear_backward, {"x": x, "w": randn(6, 5, seed=2), "b": randn(5, seed=3)})
    else:
        q, k, v = (randn(4, 2, 5, 3, seed=s) for s in (4, 5, 6))
        mask = (np.tril(np.ones((5, 5), bool)) if case == "attention_causal"
                else np.random.default_rng(7).random((4, 1, 1, 5)) > 0.3)
        mask[..., 0] = True
        result = check_op(attention_forward, attention_backward, {"q": q, "k": k, "v": v}, kwargs={"mask": mask})
    assert result.passed, result


def test_threads_do_not_change_a_training_run(monkeypatch):
    """Same seed, one thread or two, tiny blocks or none: the same losses (row-wise work is exact)."""
    from tinymtt.commands.bench import CONFIGS
    from tinymtt.commands.timing import build_tinymtt, host_batch

    def losses():
        step = build_tinymtt(CONFIGS["tiny"], host_batch(CONFIGS["tiny"]))[0]
        return [backend.to_float(step()) for _ in range(5)]

    reference = whole(losses)
    monkeypatch.setattr(backend, "BLOCK_ELEMENTS", 16)
    monkeypatch.setattr(backend, "PARALLEL_ELEMENTS", 0)
    with backend.threads(2):
        assert losses() == pytest.approx(reference, rel=1e-5)


def test_a_small_op_stays_on_one_thread(monkeypatch):
    """Below PARALLEL_ELEMENTS the kernel is one call on the whole arrays: a hand-off costs more than the work."""
    monkeypatch.setattr(backend, "BLOCK_ELEMENTS", 16)
    monkeypatch.setattr(backend, "PARALLEL_ELEMENTS", 1000)
    calls = []
    with backend.threads(2):
        backend.blockwise(lambda a: calls.append(len(a)), np.zeros((999, 1)))
        assert calls == [999]
        calls.clear()
        backend.blockwise(lambda a: calls.append(len(a)), np.zeros((1000, 1)))
        assert len(calls) > 1 and sum(calls) == 1000
