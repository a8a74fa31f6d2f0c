"""tinymtt.plots: the MMoE gates of a run (gates.png) and metric against cost (compare --architectures --figure)."""

import numpy as np
import pytest

from tinymtt.plots.costs import plot_architectures
from tinymtt.plots.gates import plot_gates


def test_plot_gates_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    matrices = [rng.dirichlet(np.ones(3), size=4) for _ in range(2)]    # 2 blocks, T = 4, E = 3
    path = plot_gates(matrices, ["a", "b", "c", "d"], tmp_path / "gates.png")
    assert path.exists() and path.stat().st_size > 1000


def test_plot_architectures_is_reproducible(tmp_path):
    pytest.importorskip("matplotlib")
    tasks = [{"name": "max", "metric": "accuracy", "lower_is_better": False},
             {"name": "mean", "metric": "mse", "lower_is_better": True}]
    rows = [{"name": name, "gflop_per_step": 0.001 * (i + 1),
             "metrics": {"max": {"mean": 0.5 + 0.1 * i, "std": 0.02}, "mean": {"mean": 0.01 / (i + 1), "std": 0.001}}}
            for i, name in enumerate(["conditioned", "lora", "single-task"])]
    results = {"tasks": tasks, "rows": rows, "data": "sequences", "config": {"seeds": 3, "steps": 10, "d_model": 8,
                                                                             "num_layers": 2}}
    first, second = plot_architectures(results, tmp_path / "a.png"), plot_architectures(results, tmp_path / "b.png")
    assert first.stat().st_size > 1000 and first.read_bytes() == second.read_bytes()
