"""The brute-force reference the MGDA and CAGrad tests share: every point of a grid on the simplex."""

import functools

import numpy as np


@functools.lru_cache(maxsize=None)
def simplex_grid(num_tasks, steps):
    """(N, T): every α ≥ 0 with Σ α = 1 whose entries are multiples of 1/steps (T = 2 or 3)."""
    ticks = np.arange(steps + 1)
    if num_tasks == 2:
        first = ticks[:, None]
    elif num_tasks == 3:
        a, b = np.meshgrid(ticks, ticks, indexing="ij")
        keep = a + b <= steps
        first = np.stack([a[keep], b[keep]], axis=1)
    else:
        raise ValueError(f"simplex_grid is for 2 or 3 tasks, got {num_tasks}")
    first = first / steps
    grid = np.hstack([first, 1.0 - first.sum(axis=1, keepdims=True)])
    grid.setflags(write=False)
    return grid
