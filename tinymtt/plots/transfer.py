"""The label-budget sweep's picture: the main task's test accuracy against the number of its labels."""

from __future__ import annotations

from pathlib import Path

import numpy

from .canvas import reproducible_style, save


def plot_transfer(results: dict, path) -> Path:
    """Two curves, single-task and multi-task, mean ± std over the seeds as bands; the majority class dashed.

    results: what tinymtt.train.transfer.sweep returns. The budget axis is logarithmic.
    """
    rows = results["rows"]
    budgets = numpy.array([row["budget"] for row in rows], dtype=float)
    config = results["config"]
    with reproducible_style() as Figure:
        figure = Figure(figsize=(6.4, 4.2), constrained_layout=True)
        axes = figure.add_subplot()
        for key, label, colour in (("single", "single-task", "tab:blue"),
                                   ("multi", f"multi-task ({config['mode']})", "tab:orange")):
            mean = numpy.array([row[f"{key}_mean"] for row in rows])
            std = numpy.array([row[f"{key}_std"] for row in rows])
            axes.plot(budgets, mean, marker="o", color=colour, label=label)
            axes.fill_between(budgets, mean - std, mean + std, color=colour, alpha=0.2)
        axes.axhline(results["majority"]["mean"], color="grey", linestyle="--", label="majority class")
        if budgets.size > 1:
            axes.set_xscale("log")
        axes.set_xticks(budgets, [f"{int(b):,}" for b in budgets])
        axes.minorticks_off()
        axes.set(xlabel=f"{results['main']} labels in training (the auxiliaries keep all theirs)",
                 ylabel=f"{results['main']} test accuracy",
                 title=f"{config['data']}: {results['main']} + {', '.join(results['auxiliaries'])}, "
                       f"{len(config['seeds'])} seeds × {config['steps']} steps\n(mean over the seeds; band: ± one std)")
        axes.legend()
        return save(figure, path)
