"""Fixed weights: L = Σ_i w_i L_i with constant w_i (1 each by default).

Where multi-task learning starts. The gradient of the weighted sum is the
weighted sum of the task gradients, ∇L = Σ_i w_i ∇L_i, so the weights scale
each task's pull on the shared parameters; ``tinymtt train --weights
sort=1,mean=2`` sets them.
"""

from __future__ import annotations

import numpy

from .base import Strategy, task_vector


class Fixed(Strategy):
    """L = Σ_i w_i L_i with constant weights (default 1 each)."""

    name = "fixed"
    options = {"weights": None}

    def __init__(self, num_tasks, *, kinds=None, weights=None):
        super().__init__(num_tasks, kinds=kinds)
        self.fixed = numpy.ones(self.num_tasks) if weights is None else task_vector(weights, self.num_tasks, "weights")
        if not numpy.isfinite(self.fixed).all():
            raise ValueError(f"weights must be finite numbers, got {self.fixed.tolist()}")

    def weights(self):
        return self.fixed
