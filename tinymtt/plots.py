"""Training-curve plots (matplotlib is optional: without it, nothing is drawn)."""

from __future__ import annotations

from pathlib import Path

from .train import read_history


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_history(history_path, out_path, title="") -> Path | None:
    """Per-task training loss (log scale) and validation metrics against the step.

    Returns the written path, or None when matplotlib is not installed.
    """
    if not have_matplotlib():
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    out_path = Path(out_path)
    figure.savefig(out_path, dpi=110)
    plt.close(figure)
    return out_path
