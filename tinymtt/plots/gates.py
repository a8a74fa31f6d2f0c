"""The mixture-of-experts gates of a run: one T×E heat map per block (gates.png)."""

from __future__ import annotations

import numpy

from .canvas import pyplot, save


def plot_gates(matrices, task_names, out_path, title=""):
    """matrices: one (T, E) array per MMoE block (``MultiTaskTransformer.gate_affinity``).

    Row t is task t's mean gate probability for each expert; rows that look alike
    are tasks that share experts. Returns the written path, or None without matplotlib.
    """
    plt = pyplot()
    if plt is None:
        return None
    matrices = [numpy.asarray(m, dtype=numpy.float64) for m in matrices]
    figure, axes = plt.subplots(1, len(matrices), figsize=(1.8 + (0.9 + 0.5 * matrices[0].shape[1]) * len(matrices), 0.9 + 0.45 * len(task_names)),
                                constrained_layout=True, squeeze=False)
    for index, (ax, matrix) in enumerate(zip(axes[0], matrices)):
        image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(matrix.shape[1]), [f"e{e}" for e in range(matrix.shape[1])])
        ax.set_yticks(range(len(task_names)), task_names if index == 0 else [""] * len(task_names))
        ax.set_title(f"block {index}", fontsize=9)
        for (t, e), value in numpy.ndenumerate(matrix):
            ax.text(e, t, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if value < 0.6 else "black")
    figure.colorbar(image, ax=list(axes[0]), shrink=0.8, label="mean gate probability")
    figure.suptitle(title or "MMoE gates: which experts each task uses", fontsize=10)
    path = save(figure, out_path)
    plt.close(figure)
    return path
