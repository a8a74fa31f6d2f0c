"""Gradient-conflict diagnostics: do the tasks pull the shared parameters the same way?

With G (T, P) the per-task gradients of the shared parameters (row i = ∇_θ L_i,
tinymtt.mtl.task_gradients), everything here comes from the Gram matrix
K = G Gᵀ (T, T), K_ij = g_i·g_j:

    norm_i  = ‖g_i‖ = √K_ii                            how hard task i pulls
    cos_ij  = g_i·g_j / (‖g_i‖ ‖g_j‖) = K_ij / √(K_ii K_jj)   in [−1, 1]
    conflict between i and j  ⇔  cos_ij < 0  ⇔  g_i·g_j < 0

Why the sign matters: a small step −η d changes task i's loss by
ΔL_i ≈ −η g_i·d. Along the sum d = Σ_j g_j, ΔL_i ≈ −η(‖g_i‖² + Σ_{j≠i} g_i·g_j):
a negative g_i·g_j takes away from task i's progress, and when
Σ_{j≠i} g_i·g_j < −‖g_i‖² the step makes task i *worse* (PCGrad's and
CAGrad's starting point). A pair whose task is absent from the batch (not
counted) or whose gradient is exactly zero has no direction: its cosine is NaN
here (``None`` in JSON), never a made-up 0.

``ConflictLog`` accumulates these over training steps (how often each pair
conflicts, its mean cosine); ``conflict_record(model, counted)`` measures one
step from the model's last ``loss`` call (T extra backward passes, see its
docstring). tinymtt.train.callbacks logs them during training, and
tinymtt.plots.history.plot_conflict draws a log or a training history.
"""

from __future__ import annotations

import math

import numpy

from .gradients import task_gradients
from .simplex import gram_matrix


def _counted_vector(counted, num_tasks):
    if counted is None:
        return numpy.ones(num_tasks, dtype=bool)
    values = list(counted.values()) if isinstance(counted, dict) else list(counted)
    if len(values) != num_tasks:
        raise ValueError(f"counted must give one entry per task ({num_tasks}, the rows of task_grads), "
                         f"got {len(values)}")
    return numpy.array([bool(v) for v in values], dtype=bool)


def gradient_conflict(task_grads, counted=None) -> dict:
    """Norms, cosines and conflicts of the task gradients G (T, P) (module docstring).

    counted: which tasks had a target in the batch (a dict in task order or T
    booleans; default all). Returns host NumPy/Python values:

        norms        (T,) float64     ‖g_i‖ (NaN for a task not counted)
        cosine       (T, T) float64   cos_ij; 1 on the diagonal; NaN where i or j has no direction
        conflicts    (T, T) bool      cos_ij < 0 (False where NaN)
        conflict     bool             any pair conflicts
        pairs        list of (i, j)   the conflicting pairs, i < j
        counted      (T,) bool
    """
    gram = gram_matrix(task_grads, "task_grads")                 # (T, T) host float64, finite
    num_tasks = gram.shape[0]
    counted = _counted_vector(counted, num_tasks)
    squared = numpy.maximum(gram.diagonal(), 0.0)
    norms = numpy.sqrt(squared)
    usable = counted & (squared > 0)                             # a direction exists
    with numpy.errstate(invalid="ignore", divide="ignore"):
        cosine = gram / numpy.sqrt(numpy.outer(squared, squared))
    cosine = numpy.clip(cosine, -1.0, 1.0)                       # rounding may leave |cos| a hair above 1
    valid = numpy.outer(usable, usable)
    cosine[~valid] = numpy.nan
    cosine[numpy.diag_indices(num_tasks)] = numpy.where(usable, 1.0, numpy.nan)
    conflicts = valid & (numpy.nan_to_num(cosine, nan=0.0) < 0)
    upper = numpy.triu(conflicts, k=1)
    pairs = [(int(i), int(j)) for i, j in zip(*numpy.nonzero(upper))]
    return {"norms": numpy.where(counted, norms, numpy.nan), "cosine": cosine, "conflicts": conflicts,
            "conflict": bool(pairs), "pairs": pairs, "counted": counted}


def _jsonable(array):
    """A nested list with None for NaN (JSON has no NaN)."""
    return [_jsonable(row) for row in array] if getattr(array, "ndim", 0) > 1 else \
        [None if not math.isfinite(float(v)) else float(v) for v in array]


def conflict_record(model, counted=None, *, task_names=None, task_grads=None) -> dict:
    """One step's {"norms", "cosine", "conflict", "pairs"} as JSON-able data, from the model's last loss.

    Call after ``result = model.loss(batch)``, with ``counted = result.counted``
    (None: every task counts) -- and after the training step's own backward
    pass if there is one: the model's gradients are saved first and *restored*
    afterwards (the parameters are not touched), so the optimizer step that
    follows is exactly the one it would have been.

    Cost: T extra backward passes (one per task, via ``task_gradients``) plus a
    copy of every gradient -- about T times the step's own backward pass. Log
    every ``log_every`` steps, not every step. A gradient strategy that already
    computed G this step can pass it as ``task_grads`` (then nothing is re-run).

    Shapes: norms (T,), cosine (T, T); None where a task was absent from the batch.
    """
    names = list(task_names or model.config.task_names)
    if task_grads is None:
        saved = {name: grad.copy() for name, grad in model.gradients().items()}
        try:
            task_grads = task_gradients(model, counted=counted)
        finally:
            for name, grad in model.gradients().items():
                grad[...] = saved[name]
    result = gradient_conflict(task_grads, counted)
    return {"tasks": names, "norms": _jsonable(result["norms"]), "cosine": _jsonable(result["cosine"]),
            "conflict": result["conflict"], "pairs": [list(pair) for pair in result["pairs"]]}


def _as_matrix(cosine):
    """A (T, T) float64 array from nested lists (None -> NaN) or an array."""
    return numpy.array([[numpy.nan if v is None else v for v in row] for row in cosine], dtype=numpy.float64)


class ConflictLog:
    """Conflict statistics over training steps; ``to_dict()`` is plain JSON.

    For every pair (i, j), over the steps where both tasks had a direction:
    how many steps (``seen``), how many with cos_ij < 0 (``conflicted``), and
    the sum of cos_ij (for the mean). Overall: the share of steps with at least
    one conflicting pair. ``steps`` and ``cosines`` keep the series for a plot.
    """

    def __init__(self, task_names):
        self.task_names = list(task_names)
        num_tasks = len(self.task_names)
        if num_tasks < 1:
            raise ValueError("task_names must name at least one task")
        self.seen = numpy.zeros((num_tasks, num_tasks), dtype=numpy.int64)
        self.conflicted = numpy.zeros((num_tasks, num_tasks), dtype=numpy.int64)
        self.cosine_sum = numpy.zeros((num_tasks, num_tasks))
        self.steps_with_conflict = 0
        self.steps, self.cosines, self.norms = [], [], []

    def add(self, step, cosine, norms=None):
        """Record one step: ``cosine`` (T, T) (array, or nested lists with None), ``norms`` (T,) optional."""
        cosine = _as_matrix(cosine)
        num_tasks = len(self.task_names)
        if cosine.shape != (num_tasks, num_tasks):
            raise ValueError(f"cosine must be ({num_tasks}, {num_tasks}) for the tasks {self.task_names}, "
                             f"got shape {cosine.shape}")
        valid = numpy.isfinite(cosine)
        conflicts = valid & (numpy.nan_to_num(cosine, nan=0.0) < 0)
        self.seen += valid
        self.conflicted += conflicts
        self.cosine_sum += numpy.where(valid, cosine, 0.0)
        self.steps_with_conflict += int(conflicts.any())
        self.steps.append(int(step))
        self.cosines.append(cosine)
        self.norms.append(None if norms is None else
                          numpy.array([numpy.nan if v is None else v for v in norms], dtype=numpy.float64))
        return self

    def add_record(self, step, record):
        """Record a ``conflict_record`` / history entry's ``{"cosine", "norms"}``."""
        return self.add(step, record["cosine"], record.get("norms"))

    @classmethod
    def from_history(cls, records, task_names=None):
        """A log of every history record (a list of dicts, e.g. tinymtt.train.read_history's) that carries a
        ``conflict`` entry."""
        found = [r for r in records if isinstance(r, dict) and r.get("conflict")]
        if not found:
            raise ValueError("no history record carries a 'conflict' entry (train with conflict logging on)")
        names = task_names or found[0]["conflict"].get("tasks")
        if names is None:
            names = [f"task {i}" for i in range(len(found[0]["conflict"]["cosine"]))]
        log = cls(names)
        for record in found:
            log.add_record(record["step"], record["conflict"])
        return log

    def __len__(self):
        return len(self.steps)

    def mean_cosine(self):
        """(T, T): the mean cos_ij over the steps where both tasks had a direction (NaN if never)."""
        with numpy.errstate(invalid="ignore", divide="ignore"):
            return numpy.where(self.seen > 0, self.cosine_sum / numpy.maximum(self.seen, 1), numpy.nan)

    def conflict_share(self):
        """(T, T): the share of those steps with cos_ij < 0 (NaN if never seen)."""
        return numpy.where(self.seen > 0, self.conflicted / numpy.maximum(self.seen, 1), numpy.nan)

    def to_dict(self) -> dict:
        """Plain JSON: per pair i < j its steps, conflict share and mean cosine; overall share; the matrices."""
        names, pairs = self.task_names, []
        share, mean = self.conflict_share(), self.mean_cosine()
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                pairs.append({"tasks": [names[i], names[j]], "steps": int(self.seen[i, j]),
                              "conflict_share": None if not self.seen[i, j] else float(share[i, j]),
                              "mean_cosine": None if not self.seen[i, j] else float(mean[i, j])})
        total = len(self.steps)
        return {"tasks": names, "steps": total,
                "conflict_share": self.steps_with_conflict / total if total else None,
                "pairs": pairs, "mean_cosine": _jsonable(mean), "pair_conflict_share": _jsonable(share)}
