"""What ``tinymtt compare`` measures, shared by its two tables (strategies, architectures):
the data splits, one metric per task, and Δ%, the relative change against single-task baselines."""

from __future__ import annotations

from ..data import load_dataset

# the one metric per task kind, and whether lower is better (l_t)
PRIMARY = {"token": ("token_accuracy", False), "sequence": ("accuracy", False), "regression": ("mse", True)}
DATA = ("sequences", "digits", "conflict")


def relative_gain(multi: dict, base: dict, lower_is_better: dict) -> float:
    """Δ_m in percent: (1/T) Σ_t (−1)^{l_t} (M_m,t − M_b,t) / M_b,t · 100, over the tasks of ``base``."""
    if any(base[t] == 0 for t in base):          # a relative change from 0 is undefined
        return float("nan")
    terms = [(-1.0 if lower_is_better[t] else 1.0) * (multi[t] - base[t]) / base[t] for t in base]
    return 100.0 * sum(terms) / len(terms)


def load_splits(config):
    """(train, test) of the chosen data set and tasks (data seed 0 for every run)."""
    if config.data == "digits":
        data = load_dataset("digits", seed=0)
        data = data.select_tasks(config.tasks) if config.tasks else data
    else:                                      # generated: sequences, conflict
        data = load_dataset(config.data, num_examples=config.examples, seed=0, tasks=config.tasks)
    return data.split((0.8, 0.2), seed=0)
