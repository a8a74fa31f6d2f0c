"""The same code on the GPU: CuPy results must equal the NumPy ones.

Skips as a whole where CuPy or a usable GPU is missing. Where present, every
op runs forward and backward on NumPy and on CuPy in float64, and the two must
agree to 1e-12 relative (only the order of floating-point sums differs), with
every result living on the device.

    TINYMTT_BACKEND=cupy python -m pytest       # the whole suite on the GPU
    python -m pytest tests/test_cupy.py          # just this parity check
"""

import numpy as np
import pytest

from tinymtt import backend, ops
from tinymtt.backend import is_cupy_array, to_device, to_numpy, use
from tinymtt.gradcheck import check_op, rel_error
from tinymtt.validation import ShapeError, check_index_range, check_same_module

pytestmark = pytest.mark.skipif(
    not backend.cupy_available(),
    reason="needs CuPy and a CUDA GPU: pip install 'tinymtt[gpu]' (cupy-cuda12x) or cupy-cuda13x for CUDA 13")

PARITY = 1e-12


@pytest.fixture
def cupy():
    """The CuPy module, with the backend switched to it for the test."""
    with use("cupy"):
        yield backend.get_array_module()


def rng(seed):
    return np.random.default_rng(seed)


def normal(*shape, seed=0):
    return rng(seed).standard_normal(shape)


# ---------------------------------------------------------------- the backend on a GPU

def test_use_cupy():
    before = backend.get_backend()
    with use("cupy") as chosen:
        assert chosen.name == "cupy"
        assert backend.get_backend() == "cupy"
        xp = backend.get_array_module()
        assert xp.__name__ == "cupy"
        assert backend.array_module(xp.zeros(2)) is xp
        assert backend.array_module(np.zeros(2), xp.zeros(2)) is xp   # CuPy if any argument is
    assert backend.get_backend() == before


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_to_device_gives_cupy_arrays(cupy, dtype):
    host = (normal(3, 4) * 5).astype(dtype)
    device = to_device(host)
    assert is_cupy_array(device) and isinstance(device, cupy.ndarray)
    assert device.dtype == dtype and device.shape == (3, 4)
    back = to_numpy(device)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, host)
    assert to_device(host.astype(np.float64), dtype=np.float32).dtype == np.float32


def test_to_device_under_numpy_brings_cupy_arrays_home(cupy):
    device = to_device(normal(2, 3))
    with use("numpy"):
        home = to_device(device)
    assert isinstance(home, np.ndarray)
    np.testing.assert_array_equal(home, to_numpy(device))


def test_init_weights_equal_bit_for_bit(cupy):
    host = backend.init_rng(11).standard_normal((16, 8)).astype(np.float32)
    device = to_device(backend.init_rng(11).standard_normal((16, 8)).astype(np.float32))
    assert is_cupy_array(device)
    np.testing.assert_array_equal(to_numpy(device), host)
    assert to_numpy(device).tobytes() == host.tobytes()


def test_device_rng_on_cupy(cupy):
    a = backend.device_rng(5).random((4, 6), dtype=np.float32)
    b = backend.device_rng(5).random((4, 6), dtype=np.float32)
    assert is_cupy_array(a) and a.dtype == np.float32 and a.shape == (4, 6)
    np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    assert float(a.min()) >= 0 and float(a.max()) < 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scatter_add_accumulates_on_cupy(cupy, dtype):
    ids = np.array([1, 3, 1, 0, 1, 3])
    values = normal(6, 4, seed=2).astype(dtype)
    expected = np.zeros((5, 4), dtype=dtype)
    np.add.at(expected, ids, values)
    target = cupy.zeros((5, 4), dtype=dtype)
    returned = backend.scatter_add(target, to_device(ids), to_device(values))
    assert returned is target
    assert rel_error(target, expected) <= (1e-6 if dtype == np.float32 else PARITY)
    np.testing.assert_array_equal(to_numpy(target)[[2, 4]], 0)


def test_scatter_add_refuses_mixed_devices(cupy):
    with pytest.raises(TypeError, match="one backend"):
        backend.scatter_add(cupy.zeros(3), np.array([0, 1]), cupy.ones(2))


def test_check_index_range_catches_out_of_range_ids_on_cupy(cupy):
    # CuPy would wrap these around silently; the check must stop them first
    with pytest.raises(ShapeError, match=r"ids must lie in \[0, 10\).*got a value 12"):
        check_index_range(to_device(np.array([[0, 3], [12, 1]])), "ids", 10)
    with pytest.raises(ShapeError, match="got a value -1"):
        check_index_range(to_device(np.array([0, -1])), "ids", 10)
    ids = to_device(np.array([0, 9]))
    assert check_index_range(ids, "ids", 10) is ids
    with pytest.raises(ShapeError, match="ids"):
        ops.embedding_forward(to_device(np.array([[0, 7]])), to_device(normal(7, 3)))


def test_check_same_module_on_mixed_devices(cupy):
    with pytest.raises(TypeError, match="x on numpy, w on cupy"):
        check_same_module(x=np.zeros(2), w=cupy.zeros(2))


def test_gradient_check_runs_on_cupy(cupy):
    inputs = {"x": to_device(normal(3, 4, seed=3)), "w": to_device(normal(4, 2, seed=4)),
              "b": to_device(normal(2, seed=5))}
    result = check_op(ops.linear_forward, ops.linear_backward, inputs)
    assert result.passed, result.report()
    assert result.worst <= 1e-7


# ---------------------------------------------------------------- every op: CuPy equals NumPy

def _cases():
    """(id, forward, backward, host arguments, keyword arguments) for every op."""
    ids = np.array([[1, 2, 1, 0, 6], [2, 2, 5, 1, 3]])                   # repeats: the scatter-add path
    relu_x = normal(2, 3, 4, seed=10)
    relu_x = np.where(relu_x >= 0, relu_x + 0.1, relu_x - 0.1)            # away from the kink
    targets = rng(11).integers(0, 5, size=(2, 3))
    token_mask = np.array([[True, True, False], [True, False, False]])
    return [
        ("linear", ops.linear_forward, ops.linear_backward,
         (normal(2, 3, 4, seed=1), normal(4, 5, seed=2), normal(5, seed=3)), {}),
        ("embedding", ops.embedding_forward, ops.embedding_backward, (ids, normal(7, 4, seed=4)), {}),
        ("relu", ops.relu_forward, ops.relu_backward, (relu_x,), {}),
        ("gelu", ops.gelu_forward, ops.gelu_backward, (normal(2, 3, 4, seed=12) * 2,), {}),
        ("softmax", ops.softmax_forward, ops.softmax_backward, (normal(2, 3, 5, seed=13) * 3,), {}),
        ("softmax-axis1", ops.softmax_forward, ops.softmax_backward, (normal(2, 3, 5, seed=14),), {"axis": 1}),
        ("log_softmax", ops.log_softmax_forward, ops.log_softmax_backward, (normal(2, 3, 5, seed=15) * 3,), {}),
        ("layernorm", ops.layernorm_forward, ops.layernorm_backward,
         (normal(2, 3, 6, seed=16), 1 + 0.1 * normal(6, seed=17), 0.1 * normal(6, seed=18)), {}),
        ("split_heads", ops.split_heads_forward, ops.split_heads_backward, (normal(2, 3, 8, seed=19), 2), {}),
        ("merge_heads", ops.merge_heads_forward, ops.merge_heads_backward, (normal(2, 2, 3, 4, seed=20),), {}),
        ("attention", ops.attention_forward, ops.attention_backward,
         (normal(2, 2, 4, 3, seed=21), normal(2, 2, 4, 3, seed=22), normal(2, 2, 4, 3, seed=23)), {}),
        ("cross_entropy", ops.cross_entropy_forward, ops.cross_entropy_backward,
         (normal(2, 3, 5, seed=24) * 2, targets), {}),
        ("cross_entropy-masked", ops.cross_entropy_forward, ops.cross_entropy_backward,
         (normal(2, 3, 5, seed=25) * 2, targets, token_mask), {}),
        ("mse", ops.mse_forward, ops.mse_backward, (normal(4, 3, seed=26), normal(4, 3, seed=27)), {}),
        ("mse-masked", ops.mse_forward, ops.mse_backward,
         (normal(4, 3, seed=28), normal(4, 3, seed=29), rng(30).random((4, 3)) < 0.6), {}),
        ("weighted_sum", ops.weighted_sum_forward, ops.weighted_sum_backward,
         (np.abs(normal(3, seed=31)), np.abs(normal(3, seed=32))), {}),
        ("task_linear", ops.task_linear_forward, ops.task_linear_backward,      # task 1 repeated: the scatter-add
         (normal(3, 2, 4, seed=33), normal(3, 4, 5, seed=34), np.array([1, 0, 1]), normal(3, 5, seed=35)), {}),
    ]


CASES = _cases()


def run_op(device, forward, backward, args, kwargs, seed=0, dtype=None):
    """forward then backward (random upstream gradient) on ``device``; host copies of the results.

    Array arguments move to the device (float ones cast to ``dtype`` when given);
    everything the op returns must live there too.
    """
    with use(device):
        moved = [to_device(a, dtype=dtype if dtype is not None and a.dtype.kind == "f" else None)
                 if isinstance(a, np.ndarray) else a for a in args]
        out, cache = forward(*moved, **kwargs)
        dout = to_device(rng(seed).standard_normal(np.shape(out)), dtype=out.dtype)
        grads = backward(dout, cache)
        grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
        results = (out,) + tuple(g for g in grads if g is not None)
        for r in results:
            assert is_cupy_array(r) == (device == "cupy"), f"a result of {forward.__name__} is on the wrong device"
        return [to_numpy(r) for r in results]


def assert_parity(case_args, seed=0):
    forward, backward, args, kwargs = case_args
    on_host = run_op("numpy", forward, backward, args, kwargs, seed)
    on_gpu = run_op("cupy", forward, backward, args, kwargs, seed)
    assert len(on_host) == len(on_gpu)
    for position, (a, b) in enumerate(zip(on_host, on_gpu)):
        what = "out" if position == 0 else f"gradient {position}"
        assert a.shape == b.shape and a.dtype == b.dtype == np.float64, (what, a.shape, b.shape, a.dtype, b.dtype)
        assert np.all(np.isfinite(b)), f"{what} has NaN/inf on the GPU"
        error = rel_error(a, b)
        assert error <= PARITY, f"{forward.__name__}: {what} differs between NumPy and CuPy, rel. error {error:.1e}"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_parity_float64(case):
    _, forward, backward, args, kwargs = case
    assert_parity((forward, backward, args, kwargs))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_keeps_float32_on_cupy(case):
    _, forward, backward, args, kwargs = case
    results = run_op("cupy", forward, backward, args, kwargs, dtype=np.float32)
    for r in results:
        assert r.dtype == np.float32, f"{forward.__name__} upcast float32 to {r.dtype} on the GPU"
        assert np.all(np.isfinite(r))


@pytest.mark.parametrize("lengths", [[4, 2], [4, 1, 3]])
def test_attention_with_padding_mask_parity(lengths):
    batch, heads, seq_len, width = len(lengths), 2, 4, 3
    q, k, v = (normal(batch, heads, seq_len, width, seed=40 + i) for i in range(3))
    host_mask = ops.padding_mask(np.array(lengths), seq_len)
    with use("cupy"):
        device_mask = ops.padding_mask(to_device(np.array(lengths)), seq_len)
        assert is_cupy_array(device_mask) and device_mask.dtype == np.bool_
        assert device_mask.shape == (batch, 1, 1, seq_len)
    np.testing.assert_array_equal(to_numpy(device_mask), host_mask)
    assert not host_mask.all()  # some keys really are hidden
    assert_parity((ops.attention_forward, ops.attention_backward, (q, k, v, host_mask), {}))


def test_attention_with_padding_and_causal_mask_parity():
    seq_len = 5
    q, k, v = (normal(2, 1, seq_len, 4, seed=50 + i) for i in range(3))
    mask = ops.padding_mask(np.array([5, 3]), seq_len) & ops.causal_mask(seq_len, xp=np)
    assert_parity((ops.attention_forward, ops.attention_backward, (q, k, v, mask), {}))


# ---------------------------------------------------------------- the multi-task strategies on a GPU

@pytest.mark.parametrize("name", ["pcgrad", "mgda", "cagrad", "dbmtl", "imtl", "nashmtl", "alignedmtl", "gradvac"])
def test_gradient_strategies_on_the_device(cupy, name):
    """The same combine on CuPy rows as on NumPy rows: the same update (and state), on the device."""
    from tinymtt.mtl import make_strategy

    grads = normal(3, 40, seed=5) + normal(40, seed=6)
    losses, counted = [0.5, 1.5, 2.0], [True, True, True]
    results = []
    for rows in (grads, to_device(grads)):
        strategy = make_strategy(name, 3, **({"shuffle": False} if name in ("pcgrad", "gradvac") else {}))
        weights = strategy.task_weights(losses, counted)
        for _ in range(2):                                     # twice: the EMAs and targets are used again
            update = strategy.combine(rows * backend.array_module(rows).asarray(weights[:, None]), losses, counted)
        results.append(update)
    assert is_cupy_array(results[1]) and not is_cupy_array(results[0])
    assert rel_error(results[0], to_numpy(results[1])) <= PARITY
