"""The picture of ``tinymtt groups``: the three affinity maps side by side, and the measured pairwise gains."""

from __future__ import annotations

import numpy

from .canvas import pyplot, save


def _matrix(value):
    return numpy.array([[numpy.nan if v is None else v for v in row] for row in value], dtype=numpy.float64)


def plot_groups(results: dict, out_path):
    """Lookahead affinity, gradient cosine, task attention (and, validated, the measured gains); the path or None.

    results: the JSON of ``tinymtt groups`` (nested lists, None for not measured). Every map reads
    row i → column j: what task i does for task j (the attention map is turned to read that way too,
    and shown less 1/T, since its rows sum to 1). The diagonals are left blank: they pair no two tasks.
    """
    plt = pyplot()
    if plt is None:
        return None
    names = results["tasks"]
    panels = [("lookahead affinity Z(i → j)", _matrix(results["affinity"]), ".3f"),
              ("gradient cosine", _matrix(results["cosine"]), "+.2f")]
    if results.get("attention") is not None:       # rows sum to 1: shown as the excess over uniform, 1/T
        attention = _matrix(results["attention"]).T - 1.0 / len(names)
        panels.append(("task attention: j reads i (− 1/T)", attention, "+.3f"))
    if results.get("validation"):
        panels.append(("measured gain of j beside i (%)", _matrix(results["validation"]["pairwise_gain"]), "+.1f"))
    figure, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), constrained_layout=True)
    for axis, (title, matrix, fmt) in zip(numpy.atleast_1d(axes), panels):
        matrix = matrix.copy()
        numpy.fill_diagonal(matrix, numpy.nan)        # a task and itself: not a pairing question
        limit = float(numpy.nanmax(numpy.abs(matrix))) if numpy.isfinite(matrix).any() else 1.0
        axis.imshow(matrix, vmin=-limit, vmax=limit, cmap="RdBu")
        for i in range(len(names)):
            for j in range(len(names)):
                if numpy.isfinite(matrix[i, j]):
                    axis.text(j, i, f"{matrix[i, j]:{fmt}}", ha="center", va="center", fontsize=7)
        axis.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
        axis.set_yticks(range(len(names)), names, fontsize=8)
        axis.set(title=title, xlabel="j (receives)", ylabel="i (acts)")
    figure.suptitle(f"{results['data']}: which tasks help which ({results['config']['mode']} mode)")
    path = save(figure, out_path)
    plt.close(figure)
    return path
