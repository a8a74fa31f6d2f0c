"""The CAGrad toy in pictures: each method's trajectories over the contours of the average loss.

The problem, the methods and why the picture uses small steps: tinymtt.mtl.toy.
"""

from __future__ import annotations

import numpy

from ..mtl.toy import METHODS, MINIMUM, STARTS, pareto_mask, toy_loss_grid, toy_losses, trajectory
from .canvas import pyplot, save


def plot_toy(out_path=None, steps=25000, lr=0.004, starts=STARTS, c=0.5, show=False):
    """One panel per method: its trajectories from ``starts`` over the contours of (L1 + L2)/2.

    Returns the figure (and writes it to ``out_path`` when given); None without matplotlib.
    """
    plt = pyplot(headless=out_path is not None and not show)
    if plt is None:
        return None
    grid = numpy.linspace(-10.0, 10.0, 401)
    x1, x2 = numpy.meshgrid(grid, grid)
    loss1, loss2 = toy_loss_grid(x1, x2)
    average = 0.5 * (loss1 + loss2)
    pareto = pareto_mask(x1, x2)
    names = {"gd": "GD on the mean (L1+L2)/2", "pcgrad": "PCGrad", "mgda": "MGDA", "cagrad": f"CAGrad (c = {c})"}
    colours = ("tab:orange", "tab:green", "tab:purple", "tab:red")
    figure, axes = plt.subplots(1, len(METHODS), figsize=(4.2 * len(METHODS), 5.0), constrained_layout=True)
    for axis, method in zip(axes, METHODS):
        filled = axis.contourf(x1, x2, average, levels=30, cmap="Blues_r")
        axis.contour(x1, x2, pareto, levels=[0.0], colors="dimgray", linewidths=2.5, alpha=0.8)
        paths = trajectory(method, starts, steps, lr, c)                  # (steps + 1, K, 2)
        for index in range(paths.shape[1]):
            path, colour = paths[:, index], colours[index % len(colours)]
            axis.plot(path[:, 0], path[:, 1], color=colour, linewidth=1.8,
                      label="trajectory" if index == 0 else None)
            axis.plot(*path[0], "o", color=colour, markersize=8, markeredgecolor="black",
                      label="start" if index == 0 else None)
            axis.plot(*path[-1], "X", color=colour, markersize=10, markeredgecolor="black",
                      label="end" if index == 0 else None)
        axis.plot(*MINIMUM, "*", color="gold", markersize=16, markeredgecolor="black", label="min of (L1+L2)/2")
        ends = toy_losses(paths[-1])[0].mean(axis=-1)                     # (L1 + L2)/2 at each end
        axis.set(xlim=(-10, 10), ylim=(-10, 10), xlabel="x1", ylabel="x2", aspect="equal",
                 title=f"{names[method]}\n(L1+L2)/2 at the ends: " + ", ".join(f"{v:.1f}" for v in numpy.ravel(ends)))
    axes[0].plot([], [], color="dimgray", linewidth=2.5, label="Pareto set (g1, g2 opposed)")
    figure.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=5, fontsize=9,
                  bbox_to_anchor=(0.5, -0.01))
    figure.colorbar(filled, ax=axes, shrink=0.8, label="(L1 + L2)/2")
    figure.suptitle(f"Two conflicting objectives (the CAGrad toy): Adam, lr {lr}, {steps} steps from the same starts")
    if out_path is not None:
        save(figure, out_path)
    if not show:
        plt.close(figure)
    return figure
