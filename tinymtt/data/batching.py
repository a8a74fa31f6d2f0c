"""Batches in the model's format, and a seeded, resumable iterator over an epoch of them.

``make_batch`` picks rows of a MultiTaskDataset, cuts them to the longest
length among them (or ``seq_len``) and moves them to the current backend:

    inputs    (B, S) int64 | (B, S, K) float32      mask  (B, S) bool, True = real position
    targets   {task: (B, S) int64 (-1 at padding) | (B,) int64 | (B, C) float32}
    task_ids  (B,) int64          -- conditioned mode: the task each example trains
    present   {task: (B,) bool}   -- joint mode: which examples have that target

Padded positions hold the data set's pad_id (tokens) or 0.0 (continuous), and
targets an example does not have are filled with -1 (classes) or 0.0
(regression), so nothing undefined reaches the device.

Task sampling (conditioned mode): every example of an epoch is assigned one
task, drawn among the tasks it has a target for, with weights w_τ:

    uniform        w_τ = 1
    proportional   w_τ = n_τ            (n_τ = examples with task τ's target)
    temperature    w_τ = n_τ^(1/T)      (T = 1: proportional; T → ∞: uniform)

so P(τ | example i) = w_τ·[i has τ] / Σ_σ w_σ·[i has σ]. An epoch visits each
example once, so a task's share of an epoch can never exceed its share of
examples: the rules differ only on examples that have several targets.
"""

from __future__ import annotations

import math
import numbers

import numpy

from .. import backend
from ..config import MODES
from ..validation import check_integer, check_positive_integer
from .dataset import MultiTaskDataset, as_indices

SAMPLING = ("uniform", "proportional", "temperature")
_STATE_KEYS = ("num_examples", "batch_size", "epoch", "batch", "rng")


def _check_dataset(dataset):
    if not isinstance(dataset, MultiTaskDataset):
        raise TypeError(f"dataset must be a MultiTaskDataset, got {type(dataset).__name__}")
    return dataset


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def _cut(array, seq_len, fill):
    """array (B, S, ...) -> (B, seq_len, ...): truncated, or padded with ``fill``."""
    if seq_len <= array.shape[1]:
        return array[:, :seq_len]
    pad = [(0, 0), (0, seq_len - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
    return numpy.pad(array, pad, constant_values=fill)


def _check_task_ids(dataset, rows, mode, task_ids):
    """Conditioned mode: (B,) ints in [0, T), each naming a task the example has a target for."""
    if mode == "joint":
        if task_ids is not None:
            raise ValueError("task_ids is for conditioned mode; joint mode trains every task on every example")
        return None
    if task_ids is None:
        raise ValueError("conditioned mode needs task_ids (B,): the task each example trains")
    task_ids = backend.to_numpy(task_ids)
    if task_ids.shape != rows.shape or task_ids.dtype.kind not in "iu":
        raise ValueError(f"task_ids must be ({rows.size},) integers, one per index, got "
                         f"{task_ids.dtype} array of shape {task_ids.shape}")
    if task_ids.min() < 0 or task_ids.max() >= len(dataset.tasks):
        raise ValueError(f"task_ids must lie in [0, {len(dataset.tasks)}) (the number of tasks), "
                         f"got values in [{task_ids.min()}, {task_ids.max()}]")
    present = numpy.stack([dataset.present[name][rows] for name in dataset.task_names], axis=1)   # (B, T)
    has_own = present[numpy.arange(rows.size), task_ids]
    if not has_own.all():
        first = int(numpy.flatnonzero(~has_own)[0])
        raise ValueError(f"task_ids gives example {int(rows[first])} the task "
                         f"{dataset.task_names[task_ids[first]]!r}, whose target it does not have")
    return task_ids


def make_batch(dataset, indices, mode, task_ids=None, seq_len=None) -> dict:
    """The examples at ``indices`` as a batch on the current backend (format: module docstring).

    mode: "conditioned" (``task_ids`` (B,) required: each example's task, which it
        must have a target for) or "joint" (``present`` comes from the data set)
    seq_len: None = the longest length among these examples; a smaller value
        truncates (token targets too; sequence and regression targets stay those
        of the whole sequence), a larger one pads
    """
    dataset = _check_dataset(dataset)
    mode = _check_mode(mode)
    rows = as_indices(indices, len(dataset))
    if rows.size == 0:
        raise ValueError("indices must select at least one example, got none")
    task_ids = _check_task_ids(dataset, rows, mode, task_ids)
    lengths = dataset.lengths[rows]
    seq_len = int(lengths.max()) if seq_len is None else check_positive_integer(seq_len, "seq_len")
    lengths = numpy.minimum(lengths, seq_len)
    token_inputs = dataset.vocab_size is not None
    real = numpy.arange(seq_len) < lengths[:, None]                              # (B, S) the mask
    pad = dataset.pad_id if token_inputs else 0.0
    inputs = _cut(dataset.inputs[rows], seq_len, pad)
    inputs = numpy.where(real if token_inputs else real[:, :, None], inputs, pad)   # padding holds PAD / 0.0
    batch = {"inputs": backend.to_device(inputs, dtype=numpy.int64 if token_inputs else numpy.float32),
             "mask": backend.to_device(real)}
    targets, present = {}, {}
    for t in dataset.tasks:
        has = dataset.present[t.name][rows]
        target = dataset.targets[t.name][rows]
        if t.kind == "token":
            target = _cut(numpy.where(has[:, None], target, -1), seq_len, -1)
            target = numpy.where(real, target, -1)
        elif t.kind == "sequence":
            target = numpy.where(has, target, -1)
        else:
            target = numpy.where(has[:, None], target, 0.0)
        targets[t.name] = backend.to_device(target, dtype=numpy.float32 if t.kind == "regression" else numpy.int64)
        present[t.name] = has
    batch["targets"] = targets
    if mode == "conditioned":
        batch["task_ids"] = backend.to_device(task_ids, dtype=numpy.int64)
    else:
        batch["present"] = {name: backend.to_device(has) for name, has in present.items()}
    return batch


def sampling_weights(counts, sampling="uniform", temperature=2.0):
    """(T,) task weights w_τ (sum 1) from the counts n_τ; tasks with n_τ = 0 get 0."""
    if sampling not in SAMPLING:
        raise ValueError(f"sampling must be one of {SAMPLING}, got {sampling!r}")
    if (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
            or not math.isfinite(temperature) or temperature <= 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    counts = numpy.asarray(counts, dtype=numpy.float64)
    if sampling == "uniform":
        weights = (counts > 0).astype(numpy.float64)
    elif sampling == "proportional":
        weights = counts
    else:
        weights = counts ** (1.0 / temperature)
    if not weights.sum() > 0:
        raise ValueError(f"counts must give at least one task an example, got {counts.tolist()}")
    return weights / weights.sum()


class BatchIterator:
    """One epoch of batches per ``for`` loop: seeded shuffling, task sampling, exact resume.

    ``len(it)`` is the number of batches per epoch. Each epoch draws a fresh
    order (``shuffle``) and, in conditioned mode, a fresh task for every
    example (``sampling``, see the module docstring), all from one seeded NumPy
    generator. A loop left early is continued by the next one; ``state()`` is
    plain JSON-able data, and ``set_state`` on a fresh iterator (same data set
    and arguments) makes it yield exactly the batches the saved one would have.
    """

    def __init__(self, dataset, batch_size, mode, seed=0, sampling="uniform", temperature=2.0,
                 shuffle=True, drop_last=False, seq_len=None):
        self.dataset = _check_dataset(dataset)
        self.batch_size = check_positive_integer(batch_size, "batch_size")
        self.mode = _check_mode(mode)
        check_integer(seed, "seed")
        self.sampling, self.temperature = sampling, temperature
        self.weights = sampling_weights(list(dataset.task_counts().values()), sampling, temperature)   # (T,)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.seq_len = None if seq_len is None else check_positive_integer(seq_len, "seq_len")
        if len(self) == 0:
            raise ValueError(f"batch_size={batch_size} with drop_last=True leaves no batch of the "
                             f"{len(dataset)} examples")
        self._present = numpy.stack([dataset.present[name] for name in dataset.task_names], axis=1)   # (N, T)
        if mode == "conditioned" and not self._present.any(axis=1).all():
            first = int(numpy.flatnonzero(~self._present.any(axis=1))[0])
            raise ValueError(f"dataset example {first} has no task target, so conditioned mode cannot give it a task")
        self._epoch_start = numpy.random.default_rng(seed).bit_generator.state   # the generator as the epoch began
        self.epoch, self._batch = 0, 0                  # epoch 0, no batch yielded yet

    def __len__(self):
        full, rest = divmod(len(self.dataset), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def _plan(self):
        """The current epoch's order and task ids, and the generator state that starts the next epoch."""
        rng = numpy.random.default_rng()
        rng.bit_generator.state = self._epoch_start
        size = len(self.dataset)
        order = rng.permutation(size) if self.shuffle else numpy.arange(size)
        task_ids = None
        if self.mode == "conditioned":
            # inverse-CDF draw per example among the tasks it has: cumulative weights w_τ·[i has τ]
            cumulative = numpy.cumsum(self._present[order] * self.weights, axis=1)          # (N, T)
            total = cumulative[:, -1]
            u = numpy.minimum(rng.random(size) * total, numpy.nextafter(total, 0))       # u < total
            task_ids = numpy.argmax(cumulative > u[:, None], axis=1)                      # first τ with cum > u
        return order, task_ids, rng.bit_generator.state

    def __iter__(self):
        if self._batch >= len(self):                    # the last epoch is done: start the next one
            self._epoch_start = self._plan()[2]
            self.epoch, self._batch = self.epoch + 1, 0
        order, task_ids, _ = self._plan()
        while self._batch < len(self):
            cut = slice(self._batch * self.batch_size, (self._batch + 1) * self.batch_size)
            batch = make_batch(self.dataset, order[cut], self.mode,
                               None if task_ids is None else task_ids[cut], self.seq_len)
            self._batch += 1
            yield batch

    def state(self) -> dict:
        """Where the iterator stands, as JSON-able data (ints, strings, dicts)."""
        return {"num_examples": len(self.dataset), "batch_size": self.batch_size, "epoch": self.epoch,
                "batch": self._batch, "rng": _plain(self._epoch_start)}

    def set_state(self, state):
        """Continue from ``state()`` of an iterator over the same data set with the same arguments."""
        if not isinstance(state, dict) or sorted(state) != sorted(_STATE_KEYS):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state must be a dict with keys {sorted(_STATE_KEYS)} (from state()), got {got}")
        for key, mine in (("num_examples", len(self.dataset)), ("batch_size", self.batch_size)):
            if state[key] != mine:
                raise ValueError(f"state is for {key}={state[key]!r}, this iterator has {key}={mine}")
        if not isinstance(state["batch"], int) or not 0 <= state["batch"] <= len(self):
            raise ValueError(f"state['batch'] must be an integer in [0, {len(self)}], got {state['batch']!r}")
        rng = numpy.random.default_rng()
        try:
            rng.bit_generator.state = state["rng"]
        except (TypeError, ValueError, KeyError) as error:
            raise ValueError(f"state['rng'] is not a NumPy {type(rng.bit_generator).__name__} state: {error}") from None
        self._epoch_start = rng.bit_generator.state
        self.epoch, self._batch = int(state["epoch"]), state["batch"]


def _plain(value):
    """A copy of a bit-generator state with NumPy scalars made Python ints (JSON-able)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value.item() if isinstance(value, numpy.generic) else value
