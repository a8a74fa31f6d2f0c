"""The pictures of one training run, drawn from its history: curves.png, conflict.png and affinity.png."""

from __future__ import annotations

from pathlib import Path

import numpy

from ..mtl import ConflictLog
from ..mtl.affinity import mean_affinity
from ..train import read_history
from .canvas import pyplot, save


def plot_history(history_path, out_path, title=""):
    """Per-task training loss (log scale) and validation metrics against the step.

    Returns the written path, or None when matplotlib is not installed.
    """
    plt = pyplot()
    if plt is None:
        return None
    records = read_history(history_path)
    train = [r for r in records if "losses" in r]
    evals = [r for r in records if "validation" in r]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    if train:
        steps = [r["step"] for r in train]
        for task in train[0]["losses"]:   # null = the task had no example in that batch: a gap, not a 0
            values = [r["losses"][task] for r in train]
            left.plot(steps, [float("nan") if v is None else max(v, 1e-6) for v in values], label=task)
        left.set_yscale("log")
    left.set(xlabel="step", ylabel="training loss (per task)", title="training loss")
    left.legend(fontsize=8)
    if evals:
        steps = [r["step"] for r in evals]
        for task, metrics in evals[0]["validation"].items():
            for metric in metrics:
                if metric in ("token_accuracy", "accuracy", "r2"):
                    right.plot(steps, [r["validation"][task].get(metric, float("nan")) for r in evals],
                               marker="o", label=f"{task} {metric}")
    right.set(xlabel="step", ylabel="validation metric", title="validation (accuracy, R²)")
    right.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    path = save(figure, out_path)
    plt.close(figure)
    return path


def plot_conflict(log, out_path, title=""):
    """Each task pair's cosine against the step, and the mean-cosine matrix; the path (None without matplotlib).

    log: a ConflictLog, or history records (a list of dicts, or a history.jsonl path) with ``conflict`` entries.
    """
    plt = pyplot()
    if plt is None:
        return None
    if isinstance(log, (str, Path)):
        log = read_history(log)
    if not isinstance(log, ConflictLog):
        log = ConflictLog.from_history(log)
    names, num_tasks = log.task_names, len(log.task_names)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True,
                                         gridspec_kw={"width_ratios": [1.6, 1]})
    series = numpy.array(log.cosines) if log.cosines else numpy.zeros((0, num_tasks, num_tasks))
    for i in range(num_tasks):
        for j in range(i + 1, num_tasks):
            left.plot(log.steps, series[:, i, j], marker="." if len(log.steps) < 60 else None,
                      label=f"{names[i]} · {names[j]}")
    left.axhline(0.0, color="black", linewidth=0.8)
    left.set(xlabel="training step", ylabel="cosine similarity of task gradients",
             title="task-gradient cosine on the shared parameters (< 0: conflict)", ylim=(-1.05, 1.05))
    if num_tasks > 1:
        left.legend(fontsize=8, ncol=2 if num_tasks > 3 else 1)
    mean = log.mean_cosine()
    image = right.imshow(mean, vmin=-1, vmax=1, cmap="RdBu")
    share = log.conflict_share()
    for i in range(num_tasks):
        for j in range(num_tasks):
            if numpy.isfinite(mean[i, j]):
                text = f"{mean[i, j]:+.2f}" if i == j else f"{mean[i, j]:+.2f}\n{100 * share[i, j]:.0f}% < 0"
                right.text(j, i, text, ha="center", va="center", fontsize=8,
                           color="white" if abs(mean[i, j]) > 0.6 else "black")
    right.set_xticks(range(num_tasks), names, rotation=30)
    right.set_yticks(range(num_tasks), names)
    right.set_title(f"mean cosine over {len(log)} logged steps\n(and the share of steps with a conflict)")
    figure.colorbar(image, ax=right, shrink=0.8, label="mean cosine")
    if title:
        figure.suptitle(title)
    path = save(figure, out_path)
    plt.close(figure)
    return path


def plot_affinity(records, out_path, title=""):
    """Each pair's lookahead affinity Z_{i→j} against the step, and the mean matrix; the path (None without matplotlib).

    records: history records (a list of dicts, or a history.jsonl path) with ``affinity`` entries (--log-affinity).
    """
    plt = pyplot()
    if plt is None:
        return None
    if isinstance(records, (str, Path)):
        records = read_history(records)
    logged = [r for r in records if r.get("affinity") is not None]
    names = list(logged[0]["losses"]) if logged else []
    num_tasks = len(names)
    series = numpy.array([[[numpy.nan if v is None else v for v in row] for row in r["affinity"]] for r in logged],
                         dtype=numpy.float64).reshape(len(logged), num_tasks, num_tasks)
    steps = [r["step"] for r in logged]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True,
                                         gridspec_kw={"width_ratios": [1.6, 1]})
    for i in range(num_tasks):
        for j in range(num_tasks):
            if i != j:
                left.plot(steps, series[:, i, j], marker="." if len(steps) < 60 else None,
                          label=f"{names[i]} → {names[j]}")
    left.axhline(0.0, color="black", linewidth=0.8)
    left.set(xlabel="training step", ylabel="Z(i → j) = 1 − L_j after / L_j before",
             title="lookahead affinity: a step for task i alone, seen by task j (> 0: helps)")
    if num_tasks > 1:
        left.legend(fontsize=7, ncol=2 if num_tasks > 3 else 1)
    mean = mean_affinity([r["affinity"] for r in logged]) if logged else numpy.zeros((0, 0))
    limit = float(numpy.nanmax(numpy.abs(mean))) if numpy.isfinite(mean).any() else 1.0
    image = right.imshow(mean, vmin=-limit, vmax=limit, cmap="RdBu")
    for i in range(num_tasks):
        for j in range(num_tasks):
            if numpy.isfinite(mean[i, j]):
                right.text(j, i, f"{mean[i, j]:+.3f}", ha="center", va="center", fontsize=8)
    right.set_xticks(range(num_tasks), names, rotation=30)
    right.set_yticks(range(num_tasks), names)
    right.set(xlabel="receives (j)", ylabel="steps (i)")
    right.set_title(f"mean affinity over {len(logged)} logged steps")
    figure.colorbar(image, ax=right, shrink=0.8, label="mean Z(i → j)")
    if title:
        figure.suptitle(title)
    path = save(figure, out_path)
    plt.close(figure)
    return path
