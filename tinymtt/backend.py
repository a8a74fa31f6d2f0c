"""The array-backend switch: the one place that decides between NumPy and CuPy.

Everything else in tinymtt computes with an "array module" ``xp`` that it gets
from here:

* ops take it from their inputs -- ``xp = array_module(x)`` -- so the same
  function runs on NumPy arrays on the CPU and CuPy arrays on the GPU;
* code that *creates* arrays (layers, data, the trainer) asks for the current
  backend -- ``xp = get_array_module()`` -- and moves host data there with
  ``to_device``.

Choosing the backend::

    import tinymtt.backend as backend
    backend.use("cupy")              # from now on
    with backend.use("numpy"):       # only inside the block
        ...
    TINYMTT_BACKEND=cupy python ...  # from the environment, at import

Initial weights always come from a seeded *NumPy* generator (``init_rng``) and
are then moved to the device, so the same seed gives the same model on the CPU
and on the GPU.

On the CPU, NumPy runs every element-wise operation on one core, one pass over
memory per operation. ``blockwise`` runs an op's element-wise math over blocks
of rows small enough to stay in the cache, on every core (the ufuncs release
the GIL): the same kernel, the same numbers, in a fraction of the time. The
thread count comes from TINYMTT_THREADS (default: every core this process may
use) or ``threads(n)``, used like ``use``.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy

BACKENDS = ("numpy", "cupy")
DEFAULT_DTYPE = "float32"   # training; gradient checks use float64

_INSTALL_HINT = (
    "install CuPy for your CUDA version -- `pip install 'tinymtt[gpu]'` "
    "(cupy-cuda12x, CUDA 12) or `pip install cupy-cuda13x` (CUDA 13), never both -- "
    "or choose the CPU backend: tinymtt.backend.use('numpy') / TINYMTT_BACKEND=numpy"
)


class BackendError(RuntimeError):
    """The requested array backend cannot be used here."""


_cupy_checked = None  # the CuPy module, once it has imported and run a kernel on a GPU


def _load_cupy():
    """Import CuPy and make sure a GPU can run a kernel; one clear error otherwise."""
    global _cupy_checked
    if _cupy_checked is not None:
        return _cupy_checked
    try:
        import cupy
    except Exception as error:  # ImportError, or a broken install failing at import
        raise BackendError(f"backend 'cupy' was requested but CuPy is not installed or does not import "
                           f"({type(error).__name__}: {error}); {_INSTALL_HINT}") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDA driver missing or broken
        raise BackendError(f"backend 'cupy' was requested but no usable CUDA GPU was found ({error}); "
                           f"{_INSTALL_HINT}") from None
    if count < 1:
        raise BackendError(f"backend 'cupy' was requested but no CUDA GPU is visible; {_INSTALL_HINT}")
    try:  # a GPU can be visible while kernels cannot run (driver too old, NVRTC missing)
        (cupy.arange(3, dtype=numpy.float32) + 1).sum().item()
    except Exception as error:
        raise BackendError(f"backend 'cupy' was requested but CuPy cannot run a kernel on the GPU "
                           f"({type(error).__name__}: {error}); {_INSTALL_HINT}") from None
    _cupy_checked = cupy
    return cupy


def _module_for(name: str):
    if name == "numpy":
        return numpy
    if name == "cupy":
        return _load_cupy()
    raise BackendError(f"backend must be one of {BACKENDS}, got {name!r}")


def _from_environment() -> str:
    name = os.environ.get("TINYMTT_BACKEND", "numpy").strip().lower() or "numpy"
    if name not in BACKENDS:
        raise BackendError(f"TINYMTT_BACKEND must be one of {BACKENDS}, got {name!r}")
    return name


_current_name = None    # read from TINYMTT_BACKEND on first use, so a bad value never breaks `import tinymtt`
_current_module = None  # loaded lazily, so `import tinymtt` never needs a GPU


class use:
    """Select the backend: a plain call (``use("cupy")``) or a context manager.

    As a context manager the previous backend comes back when the block ends::

        with use("numpy"):
            ...
    """

    def __init__(self, name: str):
        global _current_name, _current_module
        if not isinstance(name, str) or name.strip().lower() not in BACKENDS:
            raise BackendError(f"backend must be one of {BACKENDS}, got {name!r}")
        name = name.strip().lower()
        module = _module_for(name)  # fail now, with the clear error, not later
        self._previous = (_current_name, _current_module)
        _current_name, _current_module = name, module
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        global _current_name, _current_module
        _current_name, _current_module = self._previous
        return False

    def __repr__(self):
        return f"use({self.name!r})"


def get_backend() -> str:
    """The name of the current backend: 'numpy' or 'cupy' (TINYMTT_BACKEND until ``use`` says otherwise)."""
    global _current_name
    if _current_name is None:
        _current_name = _from_environment()
    return _current_name


def get_array_module():
    """The current backend's array module (numpy or cupy)."""
    global _current_module
    if _current_module is None:
        _current_module = _module_for(get_backend())
    return _current_module


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU (never raises)."""
    try:
        _load_cupy()
        return True
    except Exception:
        return False


def is_cupy_array(x) -> bool:
    """True for a CuPy array, without importing CuPy when it was never loaded."""
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(x, cupy.ndarray)


def array_module(*arrays):
    """The array module that the given arrays live in (Chainer's get_array_module).

    CuPy if any argument is a CuPy array, NumPy otherwise. Ops call this on
    their inputs, so they never depend on the global switch.
    """
    for a in arrays:
        if is_cupy_array(a):
            return sys.modules["cupy"]
    return numpy


def to_device(a, dtype=None):
    """Move data (NumPy or CuPy array, list, scalar) to the current backend's device.

    ``dtype`` converts on the way (None keeps the array's own). Under the
    NumPy backend a CuPy array comes back to the host.
    """
    xp = get_array_module()
    if xp is numpy and is_cupy_array(a):
        a = a.get()
    return xp.asarray(a, dtype=dtype)


def to_numpy(a):
    """Copy an array to the host as a NumPy array (a no-op for NumPy arrays)."""
    if is_cupy_array(a):
        return a.get()
    return numpy.asarray(a)


def to_float(x) -> float:
    """A 0-d array (on either device) as a Python float."""
    return float(to_numpy(x))


def init_rng(seed):
    """The seeded NumPy generator that initial weights are drawn from.

    Weights are drawn on the host, then moved with ``to_device``: the same seed
    gives bit-identical initial weights on the CPU and on the GPU.
    """
    return numpy.random.default_rng(seed)


def device_rng(seed, xp=None):
    """A seeded generator that draws on the device (dropout masks, sampling).

    Has ``.random(shape, dtype=...)`` on both backends. NumPy and CuPy streams
    differ, so dropout masks are reproducible per backend, not across them.
    """
    xp = xp or get_array_module()
    return xp.random.default_rng(seed)


def scatter_add(target, indices, values):
    """``target[indices] += values`` with repeated indices accumulating, in place.

    Plain ``target[indices] += values`` keeps only one of the repeated writes;
    NumPy spells the accumulating form ``numpy.add.at``, CuPy ``cupyx.scatter_add``.
    Used by the embedding backward (a token that appears twice gets both gradients).
    """
    on_device = [is_cupy_array(a) for a in (target, indices, values) if hasattr(a, "shape")]
    if len(set(on_device)) > 1:
        raise TypeError("scatter_add needs target, indices and values on one backend (all NumPy or all "
                        "CuPy); move them with tinymtt.backend.to_device")
    if is_cupy_array(target):
        import cupyx
        cupyx.scatter_add(target, indices, values)
    elif _rows_by_index(target, indices, values):
        _scatter_add_rows(target, indices, values)
    else:
        numpy.add.at(target, indices, values)
    return target


def _rows_by_index(target, indices, values) -> bool:
    """The embedding's case: whole rows of ``target`` picked by a 1-D array of indices >= 0."""
    return (isinstance(indices, numpy.ndarray) and indices.ndim == 1 and indices.size > 0
            and indices.dtype.kind in "iu" and isinstance(values, numpy.ndarray)
            and values.shape == indices.shape + target.shape[1:] and int(indices.min()) >= 0)


def _scatter_add_rows(target, indices, values):
    """``numpy.add.at(target, indices, values)`` for rows, several times faster:
    sort the indices, sum each run of equal ones with ``add.reduceat``, then add
    each sum to its row once (the rows are now distinct, so plain ``+=`` is right)."""
    order = numpy.argsort(indices, kind="stable")
    ordered = indices[order]
    starts = numpy.flatnonzero(numpy.concatenate(([True], ordered[1:] != ordered[:-1])))
    target[ordered[starts]] += numpy.add.reduceat(values[order], starts, axis=0)


# --- element-wise work in cache-sized blocks, on every core --------------------

BLOCK_ELEMENTS = 1 << 16   # elements of the widest array in one block: 256 KB in float32, an L2 cache's share
# Below this many elements in the widest array, one thread does the whole op: handing blocks to
# other threads costs tens of microseconds each time, more than the work of a small op.
# (Measured on a 2-core VM: the default training job took 35-39 s with every op cut over two threads,
# 24.7 s with this floor, and the bench's larger steps were no slower.)
PARALLEL_ELEMENTS = 1 << 19   # 2 MB of float32

_thread_count = None   # read from TINYMTT_THREADS on first use
_pool = None           # the worker threads (one fewer than the count: the caller works too)
_pool_workers = 0


def _threads_from_environment() -> int:
    value = os.environ.get("TINYMTT_THREADS", "").strip()
    if not value:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not value.isdigit() or int(value) < 1:
        raise BackendError(f"TINYMTT_THREADS must be a whole number >= 1, got {value!r}")
    return int(value)


def get_threads() -> int:
    """How many CPU threads ``blockwise`` uses (TINYMTT_THREADS until ``threads`` says otherwise)."""
    global _thread_count
    if _thread_count is None:
        _thread_count = _threads_from_environment()
    return _thread_count


class threads:
    """Set the thread count of ``blockwise``: a plain call (``threads(1)``) or a context manager."""

    def __init__(self, count: int):
        global _thread_count
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise BackendError(f"threads must be a whole number >= 1, got {count!r}")
        self._previous, _thread_count = get_threads(), count

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        global _thread_count
        _thread_count = self._previous
        return False


def _worker_pool(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_workers
    if _pool is None or _pool_workers < workers:
        _pool, _pool_workers = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tinymtt"), workers
    return _pool


def _blas_threads_pinned() -> bool:
    """True when BLAS was told to run one thread (the environment NumPy read as it loaded, see tinymtt.cli)."""
    return any(os.environ.get(name, "").strip() == "1"
               for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"))


def blockwise(kernel, *arrays, whole=(), blas=False):
    """Run ``kernel(*blocks, *whole)`` over blocks of rows (axis 0) of ``arrays``, on every CPU thread.

    The kernel is an op's own math, written to work **row by row**: nothing it
    computes for one row depends on another row (element-wise work, matmuls of
    rows, reductions along the other axes). Then calling it on blocks of rows
    gives what one call on the whole arrays gives (bit for bit for element-wise
    work), and the blocks can run at the same time. The kernel returns
    nothing: it writes its results into arrays passed in (fresh ones, from
    ``xp.empty``), whose blocks are views. Reductions over the rows (a bias
    gradient) stay outside.

    arrays: NumPy or CuPy arrays sharing the length N of axis 0, or None
    whole: what every block gets whole (weights, scalars, None)
    blas: the kernel is mostly one large matmul. BLAS spreads that over the
        cores by itself unless it was pinned to one thread (as the command
        line does); only then is it cut into one block per thread here.
    On CuPy, or when the arrays fit in one block, this is one call of
    ``kernel(*arrays, *whole)``: a GPU runs each operation on every core already.
    """
    sized = [a for a in arrays if a is not None]
    if (not sized or any(is_cupy_array(a) for a in (*sized, *whole)) or sized[0].ndim == 0 or sized[0].shape[0] < 2
            or (blas and not _blas_threads_pinned())):
        kernel(*arrays, *whole)
        return
    length = sized[0].shape[0]
    if any(a.shape[0] != length for a in sized):
        shapes = ", ".join(str(tuple(a.shape)) for a in sized)
        raise ValueError(f"blockwise needs arrays of one length along axis 0, got {shapes}")
    if max(a.size for a in sized) < PARALLEL_ELEMENTS:
        kernel(*arrays, *whole)
        return
    count = get_threads()
    if blas:   # one block per thread, if each gets a block's worth of work (a thread costs tens of µs)
        rows = -(-length // count) if max(a.size for a in sized) >= count * BLOCK_ELEMENTS else length
    else:
        rows = max(1, BLOCK_ELEMENTS // max(max(a.size for a in sized) // length, 1))
    starts = range(0, length, rows)
    if len(starts) == 1:
        kernel(*arrays, *whole)
        return

    def run_blocks(first, step):
        for start in starts[first::step]:
            kernel(*(None if a is None else a[start:start + rows] for a in arrays), *whole)

    count = min(count, len(starts))
    if count == 1:
        run_blocks(0, 1)
        return
    pool = _worker_pool(count - 1)
    others = [pool.submit(run_blocks, first, count) for first in range(1, count)]
    run_blocks(0, count)
    for other in others:
        other.result()   # re-raises an error from a worker thread
