"""Shared fixtures and helpers for the tests.

Arrays are made on the host with a seeded NumPy generator, then moved to the
current backend, so `TINYMTT_BACKEND=cupy pytest` runs the whole suite on the GPU.
"""

import numpy as np
import pytest

from tinymtt import backend


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
