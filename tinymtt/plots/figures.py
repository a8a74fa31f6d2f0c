"""The figures of the README and the lessons, drawn from trained models (``tinymtt figures`` trains them).

    plot_attention_sort       each head's attention weights on one sort example (conditioned model)
    plot_task_affinity        the T×T task-affinity map of task attention (joint model)
    plot_curves               per-task training loss, conditioned vs joint (same tasks, seed, steps)
    plot_gradcheck            worst relative error of every gradient check (tinymtt.gradcheck.suite)
    plot_positional_encoding  the sinusoidal table P and a few of its columns

A "run" here is what tinymtt.commands.figures trains: an object with
``model``, ``mode``, ``val_set``, ``steps``, ``history`` (the training
records) and ``metrics`` (final validation metrics). Each function draws on
matplotlib's ``Figure`` class (``canvas.figure_class()``), with the default
style and no PNG metadata, so the same run gives byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

import numpy

from .. import backend
from ..data import make_batch
from ..metrics import predict
from ..ops import positional_encoding
from .canvas import save

WIDTH = 7.5          # inches: 825 px wide at canvas.DPI, readable scaled to ~700 px


# --- 1. attention on a sort example ----------------------------------------------------

def _sort_example(run):
    """The first longest validation sequence the model sorts right (else the first longest one)."""
    val = run.val_set
    rows = numpy.flatnonzero(val.lengths == val.lengths.max())
    predicted = predict(run.model, val, rows, "sort")
    right = (predicted == val.targets["sort"][rows, :predicted.shape[1]]).all(axis=1)
    index = int(numpy.argmax(right)) if right.any() else 0
    return int(rows[index]), predicted[index, :val.lengths[rows[index]]], bool(right[index])


def plot_attention_sort(run, path, Figure) -> Path:
    """Every head of every layer, query position × key position, for one sort input."""
    model, val = run.model, run.val_set
    row, predicted, right = _sort_example(run)
    digits = [str(d) for d in val.inputs[row, :val.lengths[row]]]
    sort_id = model.config.task_names.index("sort")
    with model.evaluating():
        model.forward(make_batch(val, [row], "conditioned", task_ids=numpy.array([sort_id])))
        weights = [backend.to_numpy(block.attn.weights)[0] for block in model.encoder.blocks]   # L × (H, S, S)
    layers, heads = len(weights), weights[0].shape[0]
    top = max(float(w.max()) for w in weights)                     # one colour scale for every panel
    outputs = [f"{digit} → {out}" for digit, out in zip(digits, predicted)]
    figure = Figure(figsize=(WIDTH, 0.6 + 3.1 * layers), layout="constrained")
    axes = figure.subplots(layers, heads, squeeze=False)
    for layer, head in numpy.ndindex(layers, heads):
        ax = axes[layer, head]
        image = ax.imshow(weights[layer][head], vmin=0, vmax=top, cmap="viridis")
        ticks = range(len(digits))
        ax.set_xticks(ticks, labels=digits)
        ax.set_yticks(ticks, labels=outputs)
        ax.set(title=f"layer {layer + 1}, head {head + 1}", xlabel="key (input digit)",
               ylabel="query (input digit → output)")
    figure.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    verdict = "right" if right else f"wrong: the target is {' '.join(map(str, val.targets['sort'][row, :len(digits)]))}"
    figure.suptitle(f"Attention on a sort example (conditioned model, {run.steps} steps)\n"
                    f"input {' '.join(digits)}  →  predicted {' '.join(map(str, predicted))} ({verdict})")
    return save(figure, path)


# --- 2. the task-affinity map ------------------------------------------------------------

def task_affinity(run, batch_size=256):
    """TaskAttention.affinity averaged over every real position of the validation set: (T, T)."""
    model, val = run.model, run.val_set
    total, positions = 0.0, 0
    with model.evaluating():
        for start in range(0, len(val), batch_size):
            batch = make_batch(val, numpy.arange(start, min(start + batch_size, len(val))), "joint")
            model.forward(batch)
            count = int(backend.to_numpy(batch["mask"]).sum())
            affinity = backend.to_numpy(model.task_attention.affinity(batch["mask"])).astype(numpy.float64)
            total = total + affinity * count
            positions += count
    return total / positions


def plot_task_affinity(run, path, Figure) -> Path:
    """Rows: the task attending; columns: the task attended to; each row sums to 1."""
    affinity = task_affinity(run)
    names = run.model.config.task_names
    gamma = float(backend.to_numpy(run.model.task_attention.params["gate"])[0])
    figure = Figure(figsize=(WIDTH * 0.75, 5.0), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(affinity, vmin=0, vmax=max(float(affinity.max()), 1e-6), cmap="viridis")
    for i, j in numpy.ndindex(affinity.shape):
        light = affinity[i, j] < 0.6 * affinity.max()
        ax.text(j, i, f"{affinity[i, j]:.2f}", ha="center", va="center", color="white" if light else "black")
    ticks = range(len(names))
    ax.set_xticks(ticks, labels=names)
    ax.set_yticks(ticks, labels=names)
    ax.set(xlabel="task attended to", ylabel="task attending")
    figure.colorbar(image, ax=ax, label="mean attention weight")
    figure.suptitle(f"Task affinity: joint model, {run.steps} steps, {len(run.val_set)} validation sequences\n"
                    f"gate tanh(γ) = {numpy.tanh(gamma):+.3f} scales the mixed-in streams (0: independent tasks)",
                    fontsize=10)
    return save(figure, path)


# --- 3. training curves, conditioned vs joint ---------------------------------------------

HEADLINE = {"token_accuracy": "token acc.", "accuracy": "acc.", "r2": "R²"}   # the validation metric per kind


def plot_curves(runs, path, Figure) -> Path:
    """One panel per task: the training loss of each mode against the step (log scale)."""
    tasks = runs[0].model.config.tasks
    figure = Figure(figsize=(WIDTH, 0.6 + 2.6 * -(-len(tasks) // 2)), layout="constrained")
    axes = figure.subplots(-(-len(tasks) // 2), 2, squeeze=False).ravel()
    styles = {"conditioned": dict(color="tab:blue", linestyle="-"), "joint": dict(color="tab:orange", linestyle="--")}
    for ax, task in zip(axes, tasks):
        for run in runs:
            steps = [r["step"] for r in run.history]
            losses = [r["losses"][task.name] or float("nan") for r in run.history]   # 0: the task was not in the batch
            metrics = run.metrics[task.name]
            metric = next(key for key in HEADLINE if key in metrics)
            ax.plot(steps, losses, linewidth=1.2, label=f"{run.mode} (val. {HEADLINE[metric]} {metrics[metric]:.2f})",
                    **styles[run.mode])
        ax.set_yscale("log")
        ax.set(title=f"{task.name} ({task.kind})", xlabel="step", ylabel="training loss")
        ax.legend(fontsize=8)
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    figure.suptitle(f"Conditioned vs joint mode: same tasks, seed and {runs[0].steps} steps of batch 64\n"
                    "(conditioned: one task per example; joint: every task on every example)")
    return save(figure, path)


# --- 4. gradient-check errors ---------------------------------------------------------------

def plot_gradcheck(rows, path, Figure) -> Path:
    """A bar per check (log x), coloured by group, each group's tolerance drawn across its rows."""
    from matplotlib.patches import Patch
    rows = list(rows)
    colors = {"op": "tab:blue", "layer": "tab:green", "model": "tab:purple"}
    finite = [r.worst for r in rows if 0 < r.worst < float("inf")]
    floor = 10 ** numpy.floor(numpy.log10(min(finite + [1e-12]))) / 10     # where a zero error is drawn
    ceiling = 1.0                                                           # inf (a missing gradient) reaches it
    worst = [min(max(r.worst, floor), ceiling) for r in rows]
    figure = Figure(figsize=(WIDTH, 1.4 + 0.21 * len(rows)), layout="constrained")
    ax = figure.subplots()
    y = numpy.arange(len(rows))
    ax.axvspan(1e-2, ceiling, color="tab:red", alpha=0.08, label="> 1e-2: almost surely wrong")
    ax.barh(y, [w - floor for w in worst], left=floor, height=0.7,
            color=[colors.get(r.group, "gray") if r.passed else "tab:red" for r in rows])
    for i, r in enumerate(rows):                                            # what a bar cannot show
        if r.worst == 0 or r.worst > ceiling:
            ax.text(floor * 1.5, i, "0 (exact)" if r.worst == 0 else f"{r.worst:.1e}", va="center", fontsize=7,
                    color="black" if r.worst == 0 else "white")
    ax.set_xscale("log")
    ax.set_xlim(floor, ceiling)
    ax.set_ylim(len(rows) - 0.5, -0.5)                                      # the first check on top
    ax.set_yticks(y, labels=[r.name if r.passed else f"{r.name}  FAIL" for r in rows], fontsize=8)
    for label, r in zip(ax.get_yticklabels(), rows):
        if not r.passed:
            label.set_color("tab:red")
    spans = {}                                                              # group -> (first row, last row)
    for i, r in enumerate(rows):
        spans[r.group] = (spans.get(r.group, (i, i))[0], i)
    tolerances = {group: next(r.tolerance for r in rows if r.group == group) for group in spans}
    styles = {}                                                             # one line style per tolerance value
    for group, (first, last) in spans.items():                              # each group's tolerance on its rows
        tolerance = tolerances[group]
        new = tolerance not in styles
        styles.setdefault(tolerance, ("--", ":", "-.")[len(styles) % 3])
        ax.vlines(tolerance, first - 0.45, last + 0.45, colors="black", linestyles=styles[tolerance],
                  label=f"tolerance {tolerance:.0e}" if new else None)
    handles = ax.get_legend_handles_labels()[0] + [Patch(color=colors.get(group, "gray"), label=group)
                                                   for group in spans]
    figure.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8)
    ax.set_xlabel("worst relative error |a − n| / (|a| + |n|), log scale\n(a: hand-written gradient, "
                  "n: central differences)")
    passed = sum(r.passed for r in rows)
    rules = "; ".join(f"{group}s ≤ {tolerance:.0e}" for group, tolerance in tolerances.items())
    figure.suptitle(f"Gradient checks in float64: {passed} of {len(rows)} pass\n{rules}", fontsize=11)
    return save(figure, path)


# --- 5. the positional encoding ----------------------------------------------------------

def plot_positional_encoding(path, Figure, seq_len=64, d_model=64) -> Path:
    """The table P (positions × dimensions) and a few of its columns as curves."""
    table = backend.to_numpy(positional_encoding(seq_len, d_model, dtype="float64"))
    figure = Figure(figsize=(WIDTH, 4.2), layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=[1, 1.2])
    image = left.imshow(table, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    left.set(title=f"P: {seq_len} positions × {d_model} dims", xlabel="dimension", ylabel="position")
    figure.colorbar(image, ax=left, label="value")
    positions = numpy.arange(seq_len)
    for column in (6, 7, 16, 32):
        kind = "sin" if column % 2 == 0 else "cos"
        right.plot(positions, table[:, column], marker=".", markersize=3, linewidth=1,
                   label=f"dim {column} ({kind})")
    right.set(title="columns of P: low dims turn fast", xlabel="position", ylabel="P[position, dim]")
    right.legend(fontsize=8, ncol=2, loc="lower center", bbox_to_anchor=(0.5, 1.08), frameon=False)
    figure.suptitle("Sinusoidal positional encoding: P[pos, 2i] = sin(pos / 10000^(2i/D)), "
                    "P[pos, 2i+1] = cos(same)", fontsize=10)
    return save(figure, path)
