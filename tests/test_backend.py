"""The backend switch: use() as a call and as a context manager, the environment
variable, the CuPy error, and the helpers for what NumPy and CuPy spell differently.

These run without a GPU: switching *to* CuPy is covered by tests/test_cupy.py,
and here a previous backend is stood in for by setting the module's state.
"""

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.backend import BackendError, use

ROOT = Path(__file__).resolve().parents[1]
NO_CUPY = "CuPy and a GPU are present here: the missing-CuPy error cannot happen"


@pytest.fixture
def pretend_cupy_is_current(monkeypatch):
    """Put the module in the state `use("cupy")` would leave, with a stand-in module.

    monkeypatch puts the real state back after the test.
    """
    stand_in = types.ModuleType("stand-in for cupy")
    monkeypatch.setattr(backend, "_current_name", "cupy")
    monkeypatch.setattr(backend, "_current_module", stand_in)
    return stand_in


def run_python(code, **env):
    """Run code in a fresh interpreter (so tinymtt is imported anew) with extra environment."""
    environment = {k: v for k, v in os.environ.items() if k != "TINYMTT_BACKEND"}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=60)


# ---------------------------------------------------------------- use()

def test_plain_call_switches_for_good(pretend_cupy_is_current):
    use("numpy")
    assert backend.get_backend() == "numpy"
    assert backend.get_array_module() is np


def test_context_manager_restores_previous(pretend_cupy_is_current):
    with use("numpy") as chosen:
        assert chosen.name == "numpy"
        assert backend.get_backend() == "numpy"
        assert backend.get_array_module() is np
    assert backend.get_backend() == "cupy"
    assert backend.get_array_module() is pretend_cupy_is_current


def test_context_manager_restores_on_exception(pretend_cupy_is_current):
    with pytest.raises(ZeroDivisionError):
        with use("numpy"):
            1 / 0
    assert backend.get_backend() == "cupy"
    assert backend.get_array_module() is pretend_cupy_is_current


def test_nested_context_managers(pretend_cupy_is_current):
    with use("numpy"):
        with use("numpy"):
            assert backend.get_backend() == "numpy"
        assert backend.get_backend() == "numpy"
    assert backend.get_backend() == "cupy"


def test_name_is_normalised():
    with use("  NumPy "):
        assert backend.get_backend() == "numpy"
    assert repr(use("numpy")) == "use('numpy')"


@pytest.mark.parametrize("name", ["torch", "", "np", 3, None])
def test_invalid_name(name, pretend_cupy_is_current):
    with pytest.raises(BackendError, match=r"backend must be one of \('numpy', 'cupy'\), got " + re.escape(repr(name))):
        use(name)
    assert backend.get_backend() == "cupy"  # unchanged


@pytest.mark.skipif(backend.cupy_available(), reason=NO_CUPY)
def test_cupy_missing_gives_one_clear_error():
    before = backend.get_backend()
    with pytest.raises(BackendError) as caught:
        use("cupy")
    message = str(caught.value)
    assert "backend 'cupy' was requested" in message
    assert "pip install" in message and "cupy-cuda12x" in message and "cupy-cuda13x" in message
    assert "use('numpy')" in message and "TINYMTT_BACKEND=numpy" in message
    # one error, not a chain of ImportError tracebacks
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert backend.get_backend() == before
    assert backend.cupy_available() is False


class _FakeCuda:
    def __init__(self, count):
        self.runtime = types.SimpleNamespace(getDeviceCount=count)


def _fake_cupy(count, arange=None):
    module = types.ModuleType("cupy")
    module.ndarray = type("ndarray", (), {})
    module.cuda = _FakeCuda(count)
    module.arange = arange or (lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no NVRTC")))
    return module


def _no_gpu():
    raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")


@pytest.mark.parametrize("fake, expected", [
    (lambda: _fake_cupy(_no_gpu), "no usable CUDA GPU was found"),
    (lambda: _fake_cupy(lambda: 0), "no CUDA GPU is visible"),
    (lambda: _fake_cupy(lambda: 1), "cannot run a kernel on the GPU"),
], ids=["driver-error", "zero-gpus", "kernel-fails"])
def test_cupy_installed_but_unusable(fake, expected, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake())
    monkeypatch.setattr(backend, "_cupy_checked", None)
    before = backend.get_backend()
    with pytest.raises(BackendError, match=expected) as caught:
        use("cupy")
    assert "cupy-cuda12x" in str(caught.value)
    assert backend.get_backend() == before
    assert backend.cupy_available() is False  # never raises


# ---------------------------------------------------------------- TINYMTT_BACKEND

def test_environment_variable_read_at_import():
    code = "import tinymtt.backend as b; print(b.get_backend(), b.get_array_module().__name__)"
    result = run_python(code, TINYMTT_BACKEND=" NumPy ")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["numpy", "numpy"]
    assert run_python(code).stdout.split() == ["numpy", "numpy"]            # unset: numpy
    assert run_python(code, TINYMTT_BACKEND="").stdout.split() == ["numpy", "numpy"]


def test_environment_cupy_is_chosen_lazily():
    """TINYMTT_BACKEND=cupy never breaks `import tinymtt`; using the backend is what needs the GPU."""
    code = ("import tinymtt, tinymtt.backend as b; print(b.get_backend())\n"
            "try:\n    b.get_array_module(); print('usable')\n"
            "except b.BackendError as e:\n    print('error:', e)")
    result = run_python(code, TINYMTT_BACKEND="cupy")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "cupy"
    if backend.cupy_available():
        assert lines[1] == "usable"
    else:
        assert lines[1].startswith("error: backend 'cupy' was requested") and "cupy-cuda12x" in lines[1]


def test_invalid_environment_variable():
    # importing still works (so `tinymtt doctor` can report it); the first use is the clear error
    assert run_python("import tinymtt", TINYMTT_BACKEND="tensorflow").returncode == 0
    result = run_python("import tinymtt.backend as b; b.get_array_module()", TINYMTT_BACKEND="tensorflow")
    assert result.returncode != 0
    assert "BackendError: TINYMTT_BACKEND must be one of ('numpy', 'cupy'), got 'tensorflow'" in result.stderr


def test_invalid_environment_variable_in_the_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tinymtt", "train", "--steps", "1", "--out", str(tmp_path / "r")],
                            capture_output=True, text=True, env={**os.environ, "TINYMTT_BACKEND": "tensorflow"})
    assert result.returncode == 2
    assert result.stderr.strip() == ("tinymtt: error: TINYMTT_BACKEND must be one of ('numpy', 'cupy'), "
                                     "got 'tensorflow'")


# ---------------------------------------------------------------- moving arrays

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_to_device_to_numpy_round_trip(dtype):
    host = (np.random.default_rng(0).standard_normal((3, 4)) * 5).astype(dtype)
    with use("numpy"):
        device = backend.to_device(host)
        assert device.dtype == dtype and device.shape == (3, 4)
        back = backend.to_numpy(device)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, host)


def test_to_device_converts_dtype():
    host = np.linspace(-1, 1, 7)
    with use("numpy"):
        device = backend.to_device(host, dtype=np.float32)
    assert device.dtype == np.float32
    np.testing.assert_array_equal(backend.to_numpy(device), host.astype(np.float32))
    assert backend.to_device([1, 2, 3], dtype=np.int64).dtype == np.int64
    assert backend.to_device(2.5).shape == ()


def test_to_float():
    assert backend.to_float(np.asarray(2.5, dtype=np.float32)) == 2.5
    assert isinstance(backend.to_float(np.float64(1.0)), float)


def test_array_module_is_numpy_for_numpy():
    assert backend.array_module(np.zeros(3)) is np
    assert backend.array_module(np.zeros(3), None, 2.0, [1]) is np
    assert backend.array_module() is np
    assert backend.is_cupy_array(np.zeros(3)) is False


# ---------------------------------------------------------------- random generators

def test_init_rng_same_seed_same_draws():
    a = backend.init_rng(7).standard_normal((4, 5))
    b = backend.init_rng(7).standard_normal((4, 5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, backend.init_rng(8).standard_normal((4, 5)))
    assert isinstance(backend.init_rng(0), np.random.Generator)  # a host generator, whatever the backend


def test_device_rng_reproducible_float32():
    with use("numpy"):
        a = backend.device_rng(3).random((4, 6), dtype=np.float32)
        b = backend.device_rng(3).random((4, 6), dtype=np.float32)
        c = backend.device_rng(4).random((4, 6), dtype=np.float32)
    assert a.dtype == np.float32 and a.shape == (4, 6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() < 1
    explicit = backend.device_rng(3, xp=np).random((4, 6), dtype=np.float32)
    np.testing.assert_array_equal(a, explicit)


# ---------------------------------------------------------------- scatter_add

def test_scatter_add_accumulates_repeated_indices():
    target = np.zeros(4)
    returned = backend.scatter_add(target, np.array([1, 0, 1, 1]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert returned is target  # in place
    np.testing.assert_array_equal(target, [2.0, 8.0, 0.0, 0.0])
    # the trap it exists for: plain fancy-index += keeps one of the repeated writes
    naive = np.zeros(4)
    naive[np.array([1, 0, 1, 1])] += np.array([1.0, 2.0, 3.0, 4.0])
    assert naive[1] != 8.0


def test_scatter_add_rows_like_the_embedding_backward():
    rng = np.random.default_rng(1)
    ids = np.array([[1, 3, 1], [0, 1, 3]])
    values = rng.standard_normal((2, 3, 4)).astype(np.float32)
    table = np.zeros((5, 4), dtype=np.float32)
    backend.scatter_add(table, ids.reshape(-1), values.reshape(-1, 4))
    expected = np.zeros((5, 4), dtype=np.float32)
    for n, v in zip(ids.reshape(-1), values.reshape(-1, 4)):
        expected[n] += v
    assert table.dtype == np.float32
    np.testing.assert_allclose(table, expected, rtol=1e-6)
    np.testing.assert_array_equal(table[[2, 4]], 0)
