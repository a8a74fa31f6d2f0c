"""Dynamic weight average (Liu, Johns & Davison, CVPR 2019): more weight to the tasks that learn slowly.

A task whose loss fell slowly over the last epochs gets more weight:

    r_i = L_i(t−1) / L_i(t−2)                   (mean losses of the last two epochs)
    w_i = T exp(r_i/τ) / Σ_j exp(r_j/τ)         (a softmax scaled to sum to T; τ the temperature)

No gradient is involved: the weights follow from the loss curves alone, and
they sum to T, so the total is on the scale of the plain sum.
"""

from __future__ import annotations

import numpy

from ..validation import check_integer, check_number
from .base import Strategy, check_task_vectors


# -- the rule ----------------------------------------------------------------------
def dwa_weights(previous, before_previous, temperature=2.0):
    """w (T,) = T·softmax(r/τ), r_i = previous_i / before_previous_i (module docstring).

    previous, before_previous: (T,) the mean losses of the last and the one-before-last
    epoch. A task whose before_previous is 0 gets r_i = 1 (no trend to read).
    """
    xp = check_task_vectors(previous=previous, before_previous=before_previous)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    ratios = previous / xp.where(before_previous > 0, before_previous, 1)
    ratios = xp.where(before_previous > 0, ratios, 1)
    logits = ratios / temperature
    scores = xp.exp(logits - logits.max())                               # softmax, shifted: no overflow
    return previous.shape[0] * scores / scores.sum()


# -- the strategy --------------------------------------------------------------------
class DynamicWeightAverage(Strategy):
    """DWA: w_i = T·softmax(r_i/τ), r_i = L_i(t−1)/L_i(t−2) over "epochs" of ``window`` steps.

    An epoch here is a window of ``window`` consecutive training steps (our data
    is sampled forever, with no epoch boundary to wait for): each task's mean
    loss over a window is its L_i(t). 50 steps: a mean over 50 batches is long
    enough that batch-to-batch noise does not drive the weights (with a window
    of 1 the ratio r_i is mostly noise), short enough that a 2000-step run sees
    40 windows. The first two windows use w = 1 (the paper's t = 1, 2); a task with no counted step in
    one of the last two windows gets r_i = 1.
    """

    name = "dwa"
    options = {"window": 50, "temperature": 2.0}

    def __init__(self, num_tasks, *, kinds=None, window=50, temperature=2.0):
        super().__init__(num_tasks, kinds=kinds)
        self.window = check_integer(window, "window", low=1)
        self.temperature = check_number(temperature, "temperature", low_open=True)
        self.sums = numpy.zeros(self.num_tasks)          # this window's loss sums and counted steps
        self.counts = numpy.zeros(self.num_tasks)
        self.steps_in_window = 0
        self.means = numpy.zeros((2, self.num_tasks))    # [L(t−1), L(t−2)]
        self.known = numpy.zeros((2, self.num_tasks), dtype=bool)

    def weights(self):
        both = self.known.all(axis=0)
        return dwa_weights(numpy.where(both, self.means[0], 1.0), numpy.where(both, self.means[1], 1.0),
                           self.temperature)

    def after_step(self, losses, counted):
        losses, counted = self.vectors(losses, counted)
        self.sums += numpy.where(counted, losses, 0.0)
        self.counts += counted
        self.steps_in_window += 1
        if self.steps_in_window == self.window:
            self.means[1], self.known[1] = self.means[0], self.known[0]
            self.means[0] = numpy.where(self.counts > 0, self.sums / numpy.maximum(self.counts, 1), 0.0)
            self.known[0] = self.counts > 0
            self.sums[...], self.counts[...], self.steps_in_window = 0.0, 0.0, 0

    def state_dict(self):
        return {"sums": self.sums.copy(), "counts": self.counts.copy(), "means": self.means.copy(),
                "known": self.known.copy(), "steps_in_window": self.steps_in_window}

    def load_state_dict(self, state):
        for key in ("sums", "counts", "means", "known"):
            getattr(self, key)[...] = numpy.asarray(state[key])
        self.steps_in_window = int(state["steps_in_window"])
