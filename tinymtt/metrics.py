"""Per-task evaluation: accuracy, token accuracy, MSE and R².

    token       token_accuracy = correct real tokens / real tokens
                sequence_accuracy = examples with every token right / examples
    sequence    accuracy = correct examples / examples
    regression  mse = mean over examples and outputs of (y − t)²
                r2  = 1 − Σ(y − t)² / Σ(t − mean(t))²   (per output, summed)

Only examples that have the task's target count. In conditioned mode each
task is evaluated on its examples with that task's id; in joint mode one pass
gives every head.
"""

from __future__ import annotations

import numpy

from . import backend
from .data import MultiTaskDataset, make_batch


def _batches(size, batch_size):
    for start in range(0, size, batch_size):
        yield numpy.arange(start, min(start + batch_size, size))


class _Tally:
    """Running sums for one task's metrics (host NumPy, float64)."""

    def __init__(self, kind):
        self.kind = kind
        self.sums = {}
        self.targets = []

    def add(self, name, value):
        self.sums[name] = self.sums.get(name, 0.0) + float(value)

    def update(self, outputs, targets, mask, present):
        outputs, targets = backend.to_numpy(outputs), backend.to_numpy(targets)
        mask, present = backend.to_numpy(mask), backend.to_numpy(present)
        if self.kind == "token":
            counted = mask & present[:, None]
            right = (outputs.argmax(axis=-1) == targets) | ~counted
            self.add("tokens", counted.sum())
            self.add("right_tokens", (right & counted).sum())
            self.add("examples", present.sum())
            self.add("right_examples", (right.all(axis=1) & present).sum())
        elif self.kind == "sequence":
            self.add("examples", present.sum())
            self.add("right_examples", ((outputs.argmax(axis=-1) == targets) & present).sum())
        else:
            y, t = outputs[present].astype(numpy.float64), targets[present].astype(numpy.float64)
            self.add("examples", len(t))
            self.add("squared_error", ((y - t) ** 2).sum())
            self.targets.append(t)

    def result(self) -> dict:
        s = self.sums
        if not s.get("examples"):
            return {}
        if self.kind == "token":
            return {"token_accuracy": s["right_tokens"] / max(s["tokens"], 1),
                    "sequence_accuracy": s["right_examples"] / s["examples"]}
        if self.kind == "sequence":
            return {"accuracy": s["right_examples"] / s["examples"]}
        t = numpy.concatenate(self.targets)
        spread = float(((t - t.mean(axis=0)) ** 2).sum())
        return {"mse": s["squared_error"] / t.size,
                "r2": 1.0 - s["squared_error"] / spread if spread > 0 else float("nan")}


def evaluate(model, dataset: MultiTaskDataset, batch_size=256) -> dict:
    """{task: {metric: value}} on ``dataset``, in eval mode (restored afterwards)."""
    mode = model.config.mode
    tallies = {t.name: _Tally(t.kind) for t in model.config.tasks}
    with model.evaluating():
        if mode == "joint":
            for rows in _batches(len(dataset), batch_size):
                batch = make_batch(dataset, rows, "joint")
                outputs = model.forward(batch)
                for name, tally in tallies.items():
                    tally.update(outputs[name], batch["targets"][name], batch["mask"], batch["present"][name])
        else:
            for index, (name, tally) in enumerate(tallies.items()):
                having = numpy.flatnonzero(dataset.present[name])
                for rows in _batches(len(having), batch_size):
                    chosen = having[rows]
                    batch = make_batch(dataset, chosen, "conditioned", task_ids=numpy.full(len(chosen), index))
                    outputs = model.forward(batch)
                    everyone = backend.array_module(batch["mask"]).ones(len(chosen), dtype=bool)
                    tally.update(outputs[name], batch["targets"][name], batch["mask"], everyone)
    return {name: tally.result() for name, tally in tallies.items()}


def predict(model, dataset: MultiTaskDataset, rows, task: str):
    """Host predictions of one task for the given rows: class ids (token/sequence) or values."""
    names = model.config.task_names
    if task not in names:
        raise KeyError(f"task must be one of {names}, got {task!r}")
    rows = numpy.asarray(rows)
    task_ids = numpy.full(len(rows), names.index(task)) if model.config.mode == "conditioned" else None
    with model.evaluating():
        batch = make_batch(dataset, rows, model.config.mode, task_ids=task_ids)
        outputs = backend.to_numpy(model.forward(batch)[task])
    kind = model.config.tasks[names.index(task)].kind
    return outputs if kind == "regression" else outputs.argmax(axis=-1)
