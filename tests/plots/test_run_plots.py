"""tinymtt.plots: a run's conflict.png, and the CAGrad toy's picture."""

import numpy as np
import pytest

from tinymtt.mtl.diagnostics import ConflictLog
from tinymtt.plots.history import plot_conflict
from tinymtt.plots.toy import plot_toy


def test_plot_conflict_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    log = ConflictLog(["a", "b", "c"])
    rng = np.random.default_rng(0)
    for step in range(5):
        c = rng.uniform(-1, 1, (3, 3))
        c = (c + c.T) / 2
        np.fill_diagonal(c, 1)
        log.add(step * 10, c)
    path = plot_conflict(log, tmp_path / "conflict.png", title="test")
    assert path.exists() and path.stat().st_size > 1000
    records = [{"step": 1, "conflict": {"tasks": ["a", "b"], "cosine": [[1, -0.3], [-0.3, 1]]}}]
    assert plot_conflict(records, tmp_path / "history.png").exists()


def test_plot_toy_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    plot_toy(tmp_path / "toy.png", steps=30, lr=0.01)
    assert (tmp_path / "toy.png").stat().st_size > 10000
