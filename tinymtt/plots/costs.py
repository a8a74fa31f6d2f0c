"""What sharing costs, in one picture: each task's metric against the FLOPs of a training step,
one point per architecture (``tinymtt compare --architectures --figure PATH``)."""

from __future__ import annotations

from .canvas import reproducible_style, save

WIDTH = 10.0


def plot_architectures(results, out_path):
    """results: what tinymtt.commands.architectures.compare_architectures returns. One panel per task:
    x = MFLOP per training step (analytic), y = the task's test metric, mean ± std over the seeds."""
    tasks, rows = results["tasks"], results["rows"]
    with reproducible_style() as Figure:
        columns = min(len(tasks), 2)
        lines = -(-len(tasks) // columns)
        figure = Figure(figsize=(WIDTH, 0.8 + 3.2 * lines), layout="constrained")
        axes = figure.subplots(lines, columns, squeeze=False).ravel()
        markers = "osD^vP*X"
        for ax, task in zip(axes, tasks):
            for index, row in enumerate(rows):
                m = row["metrics"][task["name"]]
                ax.errorbar(1000 * row["gflop_per_step"], m["mean"], yerr=m["std"], marker=markers[index % 8],
                            linestyle="none", capsize=3, label=row["name"])
            arrow = "lower is better" if task["lower_is_better"] else "higher is better"
            ax.set(xlabel="MFLOP per training step", ylabel=f"{task['metric']} ({arrow})", title=task["name"])
            if task["lower_is_better"]:
                ax.set_yscale("log")
        for ax in axes[len(tasks):]:
            ax.set_visible(False)
        axes[0].legend(fontsize=8)
        c = results["config"]
        figure.suptitle(f"What sharing costs: {results['data']}, {c['seeds']} seeds x {c['steps']} steps, "
                        f"d_model {c['d_model']}, {c['num_layers']} layers (mean ± std)", fontsize=10)
        return save(figure, out_path)
