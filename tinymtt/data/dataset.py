"""MultiTaskDataset: N examples, one input each, a target per task, on the host.

A data set is a handful of NumPy arrays that live on the host (CPU memory);
``tinymtt.data.make_batch`` picks rows, pads them and moves the batch to the
current backend. Shapes (N examples, S the stored sequence length):

    inputs    (N, S) int token ids (``vocab_size``)  or  (N, S, K) float (``input_dim`` = K)
    lengths   (N,) int, 1 <= lengths <= S: positions >= length are padding
    targets   {task: (N, S) int token classes, -1 at padding
                     | (N,) int sequence classes
                     | (N, C) float regression values}   (C = the task's num_outputs)
    present   {task: (N,) bool}: which examples have that task's target (default all)

Class targets of absent examples may hold anything (e.g. -1), regression
targets may be NaN: batches replace them before they reach the device.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy

from ..config import TaskSpec
from ..validation import ShapeError, check_integer, describe


def as_indices(indices, size: int, name: str = "indices"):
    """A 1-D int64 host array of row indices in [0, size); a bool mask of length size also works."""
    array = numpy.asarray(indices)
    if array.dtype == bool:
        if array.shape != (size,):
            raise ShapeError(f"{name} as a boolean mask must have shape ({size},), got {describe(array)}")
        return numpy.flatnonzero(array)
    if array.size == 0:
        return numpy.zeros(0, dtype=numpy.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise TypeError(f"{name} must be a 1-D sequence of integer row indices, got {describe(array)}")
    if array.min() < 0 or array.max() >= size:
        bad = array.min() if array.min() < 0 else array.max()
        raise IndexError(f"{name} must lie in [0, {size}) (the number of examples), got {bad}")
    return array.astype(numpy.int64, copy=False)


def choose_tasks(tasks, available) -> list:
    """The task names a data set maker builds: ``available`` for None, else distinct names among them."""
    if tasks is None:
        return list(available)
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = sorted(set(names) - set(available))
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(f"tasks must list distinct names from {list(available)}, got {names}")
    return names


def _host_array(value, name):
    if not isinstance(value, numpy.ndarray):
        raise TypeError(f"{name} must be a host NumPy array (data sets live on the host; make_batch moves "
                        f"batches to the device), got {describe(value)}")
    return value


@dataclass(repr=False)
class MultiTaskDataset:
    """A multi-task data set on the host; see the module docstring for shapes."""
    inputs: numpy.ndarray
    lengths: numpy.ndarray
    targets: dict
    tasks: list
    present: dict | None = None
    vocab_size: int | None = None
    input_dim: int | None = None
    pad_id: int = 0
    name: str = "dataset"
    source: str = ""
    metadata: dict = field(default_factory=dict)   # per-example extras (e.g. the transform applied)

    def __post_init__(self):
        self.tasks = [t if isinstance(t, TaskSpec) else TaskSpec(**t) for t in self.tasks]
        names = [t.name for t in self.tasks]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"tasks must list at least one task, with unique names, got {names}")
        inputs = _host_array(self.inputs, "inputs")
        if (self.vocab_size is None) == (self.input_dim is None):
            raise ValueError("give exactly one of vocab_size (token inputs) and input_dim (continuous inputs), "
                             f"got vocab_size={self.vocab_size!r}, input_dim={self.input_dim!r}")
        if self.vocab_size is not None:
            if inputs.ndim != 2 or inputs.dtype.kind not in "iu":
                raise ShapeError(f"inputs of a token data set must be (N, S) integer ids, got {describe(inputs)}")
            if inputs.size and not (0 <= inputs.min() and inputs.max() < self.vocab_size):
                raise ShapeError(f"inputs must lie in [0, vocab_size={self.vocab_size}), "
                                 f"got values in [{inputs.min()}, {inputs.max()}]")
            if not 0 <= self.pad_id < self.vocab_size:
                raise ValueError(f"pad_id must lie in [0, vocab_size={self.vocab_size}), got {self.pad_id!r}")
        elif inputs.ndim != 3 or inputs.dtype.kind != "f" or inputs.shape[2] != self.input_dim:
            raise ShapeError(f"inputs of a continuous data set must be (N, S, K) float with K = input_dim = "
                             f"{self.input_dim}, got {describe(inputs)}")
        size, seq_len = inputs.shape[:2]
        lengths = _host_array(self.lengths, "lengths")
        if lengths.shape != (size,) or lengths.dtype.kind not in "iu":
            raise ShapeError(f"lengths must be ({size},) integers, got {describe(lengths)}")
        if size and (lengths.min() < 1 or lengths.max() > seq_len):
            raise ShapeError(f"lengths must lie in [1, S={seq_len}], got values in [{lengths.min()}, {lengths.max()}]")
        if not isinstance(self.targets, dict) or set(self.targets) != set(names):
            got = sorted(self.targets) if isinstance(self.targets, dict) else type(self.targets).__name__
            raise ValueError(f"targets must be a dict with one entry per task {names}, got {got}")
        for t in self.tasks:
            target = _host_array(self.targets[t.name], f"targets[{t.name!r}]")
            shape, kind = {"token": ((size, seq_len), "iu"), "sequence": ((size,), "iu"),
                           "regression": ((size, t.num_outputs), "f")}[t.kind]
            if target.shape != shape or target.dtype.kind not in kind:
                what = "float" if kind == "f" else "int"
                raise ShapeError(f"targets[{t.name!r}] ({t.kind} task) must be a {shape} {what} array, "
                                 f"got {describe(target)}")
        present = {} if self.present is None else dict(self.present)
        unknown = sorted(set(present) - set(names))
        if unknown:
            raise ValueError(f"present names unknown tasks {unknown}; the tasks are {names}")
        for name in names:
            mask = present.setdefault(name, numpy.ones(size, dtype=bool))
            if _host_array(mask, f"present[{name!r}]").shape != (size,) or mask.dtype != bool:
                raise ShapeError(f"present[{name!r}] must be a ({size},) bool array, got {describe(mask)}")
        self.present = {name: present[name] for name in names}
        self.metadata = dict(self.metadata or {})
        for key, value in self.metadata.items():
            if _host_array(value, f"metadata[{key!r}]").shape[:1] != (size,):
                raise ShapeError(f"metadata[{key!r}] must have one row per example ({size}), got {describe(value)}")

    # -- sizes -----------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def max_len(self) -> int:
        """S: the stored (padded) sequence length."""
        return int(self.inputs.shape[1])

    @property
    def task_names(self) -> list:
        return [t.name for t in self.tasks]

    def task_counts(self) -> dict:
        """n_τ: how many examples have each task's target."""
        return {name: int(mask.sum()) for name, mask in self.present.items()}

    def __repr__(self):
        kind = f"vocab_size={self.vocab_size}" if self.vocab_size is not None else f"input_dim={self.input_dim}"
        tasks = ", ".join(f"{t.name}:{t.kind}/{t.num_outputs}" for t in self.tasks)
        return f"MultiTaskDataset({self.name!r}, N={len(self)}, S={self.max_len}, {kind}, tasks=[{tasks}])"

    # -- new data sets from this one ---------------------------------------------
    def _replace(self, rows=None, tasks=None):
        rows = slice(None) if rows is None else rows
        tasks = self.tasks if tasks is None else tasks
        return MultiTaskDataset(
            inputs=self.inputs[rows], lengths=self.lengths[rows],
            targets={t.name: self.targets[t.name][rows] for t in tasks},
            present={t.name: self.present[t.name][rows] for t in tasks},
            tasks=[TaskSpec(t.name, t.kind, t.num_outputs) for t in tasks],
            vocab_size=self.vocab_size, input_dim=self.input_dim, pad_id=self.pad_id,
            name=self.name, source=self.source,
            metadata={key: value[rows] for key, value in self.metadata.items()})

    def subset(self, indices) -> "MultiTaskDataset":
        """The examples at ``indices`` (ints in [0, N), or a bool mask of length N), copied."""
        return self._replace(rows=as_indices(indices, len(self)))

    def split(self, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> tuple:
        """Disjoint random parts covering every example once: (train, val, test) by default.

        The examples are shuffled with ``numpy.random.default_rng(seed)`` and cut
        at round(N · cumulative fraction), so the same seed gives the same parts.
        """
        if (not isinstance(fractions, (list, tuple)) or not fractions
                or not all(isinstance(f, numbers.Real) and not isinstance(f, bool) and f >= 0 for f in fractions)
                or abs(sum(fractions) - 1.0) > 1e-6):
            raise ValueError(f"fractions must be a list of non-negative numbers that sum to 1, got {fractions!r}")
        seed = check_integer(seed, "seed")
        order = numpy.random.default_rng(seed).permutation(len(self))
        cuts = numpy.rint(numpy.cumsum(fractions) * len(self)).astype(int)
        cuts[-1] = len(self)
        return tuple(self._replace(rows=numpy.sort(part)) for part in numpy.split(order, cuts[:-1]))

    def select_tasks(self, names) -> "MultiTaskDataset":
        """The same examples with only the named tasks, in the order given (task ids follow it)."""
        if isinstance(names, str):
            names = [names]
        names = list(names)
        unknown = sorted(set(names) - set(self.task_names))
        if not names or unknown or len(set(names)) != len(names):
            raise ValueError(f"names must list distinct tasks of {self.task_names}, got {names}")
        by_name = {t.name: t for t in self.tasks}
        return self._replace(tasks=[by_name[name] for name in names])

    def model_config_kwargs(self) -> dict:
        """tasks, vocab_size or input_dim, and max_len: ``ModelConfig(**ds.model_config_kwargs(), d_model=...)``."""
        kwargs = {"tasks": [TaskSpec(t.name, t.kind, t.num_outputs) for t in self.tasks], "max_len": self.max_len}
        if self.vocab_size is not None:
            kwargs["vocab_size"] = int(self.vocab_size)
        else:
            kwargs["input_dim"] = int(self.input_dim)
        return kwargs
