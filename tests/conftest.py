"""Shared fixtures and helpers for the tests.

Arrays are made on the host with a seeded NumPy generator, then moved to the
current backend, so `TINYMTT_BACKEND=cupy pytest` runs the whole suite on the GPU.
"""

from tinymtt.commands.common import one_blas_thread

# One BLAS thread for the suite and the notebook kernels it starts (they inherit the
# environment), as the command does: the test matrices are tiny, and on a busy 2-core
# machine OpenBLAS's spinning threads make them many times slower. Set before NumPy is
# imported; a value already in the environment wins.
one_blas_thread()

import numpy as np  # noqa: E402,F401
import pytest  # noqa: E402

from tinymtt import backend  # noqa: E402


def pytest_report_header(config):
    try:
        import torch
        oracle = f"torch {torch.__version__}"
    except ImportError:
        oracle = "torch not installed: oracle tests skip (pip install 'tinymtt[oracle]')"
    return [f"tinymtt backend: {backend.get_backend()}", f"autograd oracle: {oracle}"]


@pytest.fixture
def xp():
    """The current backend's array module."""
    return backend.get_array_module()
