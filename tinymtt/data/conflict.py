"""The conflict suite: the sequence suite's inputs, with tasks chosen to pull a shared encoder apart.

    min        sequence    min_i x_i, the smallest digit                  (num_digits classes)
    antimean   regression  1 − mean                                       (1 output)
    sort_desc  token       position i holds the i-th largest digit        (num_digits classes)
    max, mean, sort: as in the sequence suite.

Measured with ``tinymtt compare`` (d_model 16-32, fixed strategy, the mean
cosine of the task gradients over training):

    max vs min                                   cos ≈ −0.05 to −0.16 at d_model 8-16
    mean vs 1 − mean ("antimean")                cos ≈ +0.01 (no conflict; d_model 32)
    sort vs sort descending ("sort_desc")        cos ≈ +0.09 (no conflict; d_model 32)

A target that is a linear function of another task's target does not
conflict: the second head learns the flipped readout and the shared gradients
agree. Max and min do, while the encoder is too small to serve both: the same
attention layers must single out the largest digit for one task and the
smallest for the other (tinymtt.commands.compare gives the widths measured).
"""

from __future__ import annotations

import numpy

from ..config import TaskSpec
from .dataset import MultiTaskDataset, choose_tasks
from .sequences import make_sequence_suite

CONFLICT_TASKS = ("max", "min", "mean", "antimean", "sort", "sort_desc")
DEFAULT_TASKS = ("max", "min")


def conflict_suite(num_examples: int, seed: int = 0, tasks=None) -> MultiTaskDataset:
    """``num_examples`` digit sequences with tasks from CONFLICT_TASKS (default: max and min; module docstring)."""
    names = choose_tasks(DEFAULT_TASKS if tasks is None else tasks, CONFLICT_TASKS)
    suite = make_sequence_suite(num_examples, seed=seed)
    digits = suite.vocab_size - 1
    real = numpy.arange(suite.max_len) < suite.lengths[:, None]              # (N, S) True = a digit
    smallest = numpy.where(real, suite.inputs, digits).min(axis=1)
    descending = -numpy.sort(-numpy.where(real, suite.inputs, -1), axis=1)   # padding (−1) sorts last
    built = {"min": (TaskSpec("min", "sequence", digits), smallest.astype(numpy.int64)),
             "antimean": (TaskSpec("antimean", "regression", 1),
                          (1.0 - suite.targets["mean"]).astype(numpy.float32)),
             "sort_desc": (TaskSpec("sort_desc", "token", digits),
                           numpy.where(real, descending, -1).astype(numpy.int64))}
    built.update({t.name: (t, suite.targets[t.name]) for t in suite.tasks})
    return MultiTaskDataset(inputs=suite.inputs, lengths=suite.lengths, targets={n: built[n][1] for n in names},
                            tasks=[built[n][0] for n in names], vocab_size=suite.vocab_size, pad_id=suite.pad_id,
                            name="conflict", source=suite.source)
