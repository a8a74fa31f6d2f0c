"""Per-task metrics on hand-made outputs (evaluation of a model: tests/train/test_trainer.py)."""

import numpy as np
import pytest

from tinymtt.metrics import _Tally


def test_metrics_on_hand_made_outputs():
    token = _Tally("token")
    logits = np.zeros((2, 3, 4))
    logits[0, [0, 1, 2], [1, 2, 3]] = 1.0          # predicts 1 2 3
    logits[1, [0, 1, 2], [0, 0, 0]] = 1.0          # predicts 0 0 0
    targets = np.array([[1, 2, 3], [0, 1, -1]])
    mask = np.array([[True, True, True], [True, True, False]])
    token.update(logits, targets, mask, np.array([True, True]))
    assert token.result() == {"token_accuracy": 4 / 5, "sequence_accuracy": 1 / 2}
    regression = _Tally("regression")
    regression.update(np.array([[1.0], [2.0], [9.0]]), np.array([[1.0], [3.0], [5.0]]), None,
                      np.array([True, True, False]))
    result = regression.result()
    assert result["mse"] == pytest.approx(0.5)
    assert result["r2"] == pytest.approx(1 - 1.0 / 2.0)
