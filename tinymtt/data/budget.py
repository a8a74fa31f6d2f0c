"""Label budgets: the main task's labels limited to a few examples, the auxiliary tasks keeping all theirs.

``limit_labels(dataset, task, budget, seed)`` keeps ``task``'s target on
``budget`` examples drawn with the seed (``present[task]`` is False on the
others); every other task is untouched. The draw is the first ``budget`` of
one seeded permutation of the examples that have the task, so with one seed
a smaller budget's examples are a subset of a larger one's.

``task_balanced(dataset, main)`` is the training set a multi-task model gets
in the label-budget sweep (tinymtt.train.transfer): one row per (example,
task it has), that task alone present, and the main task's rows repeated in
turn until they are as many as the largest auxiliary task's. Uniform task
sampling over this set gives every task about B/T rows of a batch of B, in
conditioned and joint mode alike, however few main labels there are::

    N examples with every auxiliary target, b of them with the main target:
    rows = N per auxiliary task + N main rows (the b labelled examples, each about N/b times)

Without the repetition a batch would hold about b/(T·N) main examples (a
conditioned epoch visits each example once, tinymtt.data.batching), and the
main task would hardly be trained at small budgets.
"""

from __future__ import annotations

import dataclasses

import numpy

from ..validation import check_integer, check_positive_integer
from .dataset import MultiTaskDataset


def _task_name(dataset, task):
    if task not in dataset.task_names:
        raise ValueError(f"task must be one of {dataset.task_names}, got {task!r}")
    return task


def limit_labels(dataset: MultiTaskDataset, task: str, budget: int, seed: int = 0) -> MultiTaskDataset:
    """The same examples with ``task``'s target on only ``budget`` of them (seeded); other tasks untouched."""
    task = _task_name(dataset, task)
    budget = check_positive_integer(budget, "budget")
    having = numpy.flatnonzero(dataset.present[task])
    if budget > having.size:
        raise ValueError(f"budget must be at most {having.size} (the examples with a {task!r} target), got {budget}")
    kept = numpy.random.default_rng(check_integer(seed, "seed")).permutation(having)[:budget]
    mask = numpy.zeros(len(dataset), dtype=bool)
    mask[kept] = True
    part = dataset.subset(numpy.arange(len(dataset)))                 # a copy: the caller's arrays stay as they are
    return dataclasses.replace(part, present={**part.present, task: mask})


def labelled(dataset: MultiTaskDataset, task: str) -> MultiTaskDataset:
    """The examples that have ``task``'s target, with that task alone (a single-task training set)."""
    task = _task_name(dataset, task)
    return dataset.select_tasks([task]).subset(dataset.present[task])


def task_balanced(dataset: MultiTaskDataset, main: str) -> MultiTaskDataset:
    """One row per (example, task it has), that task alone present; the main rows cycled up to the largest
    auxiliary task's count (module docstring). Row order: the main task's rows, then each auxiliary's."""
    main = _task_name(dataset, main)
    counts = dataset.task_counts()
    if counts[main] == 0:
        raise ValueError(f"no example has a {main!r} target")
    others = [name for name in dataset.task_names if name != main]
    size = max([counts[name] for name in others] + [counts[main]])
    rows = [numpy.resize(numpy.flatnonzero(dataset.present[main]), size)]     # cycled: each about size/b times
    rows += [numpy.flatnonzero(dataset.present[name]) for name in others]
    owner = numpy.concatenate([numpy.full(r.size, dataset.task_names.index(name))
                               for r, name in zip(rows, [main] + others)])
    part = dataset.subset(numpy.concatenate(rows))
    present = {name: owner == index for index, name in enumerate(dataset.task_names)}
    return dataclasses.replace(part, present=present)
