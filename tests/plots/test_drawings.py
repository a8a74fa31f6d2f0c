"""tinymtt.plots.figures: the task-affinity map's rows, and the gradient-check figure's special rows."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from tinymtt.config import ModelConfig
from tinymtt.data import make_sequence_suite
from tinymtt.gradcheck.suite import CheckRow
from tinymtt.model import MultiTaskTransformer
from tinymtt.plots.canvas import figure_class
from tinymtt.plots.figures import plot_gradcheck, task_affinity

matplotlib = pytest.importorskip("matplotlib")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_task_affinity_rows_are_distributions():
    data = make_sequence_suite(40, seed=1)
    config = ModelConfig(**data.model_config_kwargs(), d_model=8, num_heads=2, num_layers=1, d_ff=16, mode="joint")
    model = MultiTaskTransformer(config)
    model.task_attention.params["gate"][...] = 0.5
    affinity = task_affinity(SimpleNamespace(model=model, val_set=data), batch_size=16)   # 3 batches
    assert affinity.shape == (4, 4)
    np.testing.assert_allclose(affinity.sum(axis=1), 1.0, rtol=1e-5)
    assert model.training                                           # the mode is restored


def test_gradcheck_figure_draws_zero_and_failed_rows(tmp_path):
    rows = [CheckRow("op", "linear", 3e-12, 1e-7, True, 0.0), CheckRow("op", "exact", 0.0, 1e-7, True, 0.0),
            CheckRow("layer", "Broken", math.inf, 1e-6, False, 0.0, "ValueError: boom"),
            CheckRow("model", "Model", 2e-8, 1e-6, True, 0.0)]
    _, Figure = figure_class()
    path = plot_gradcheck(rows, tmp_path / "g.png", Figure)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
