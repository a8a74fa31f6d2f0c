"""The label-budget sweep: when does training auxiliary tasks beside the main task help it?

For each seed s and each budget b (a number of main-task labels):

1. the data set is built with seed s (words: which words; digits: the
   transforms and blanked rows) and split into train and test (85 / 15 %,
   split seed s), by example: no example (word, image) is in both;
2. the main task keeps its label on b training examples, drawn with seed s
   (tinymtt.data.budget.limit_labels; with one seed a smaller budget's
   examples are among a larger one's); every auxiliary task keeps all its
   labels;
3. **single-task**: a model trained on those b examples and the main task
   alone, batches of B/T (T = the number of tasks of the multi-task model);
4. **multi-task**: the same architecture trained on the main task and the
   auxiliaries, batches of B from tinymtt.data.budget.task_balanced (each task
   about B/T rows of a batch, the b main examples repeated in turn), in
   conditioned or joint mode;
5. both train the same number of steps with the same model seed s and are
   scored on the test split by the main task's accuracy.

So the main task sees the same number of its examples per step in both runs
(B/T), drawn from the same b labels; what differs is only whether the shared
encoder also learns the auxiliary tasks. The result of a budget is the mean
and the sample standard deviation (ddof 1) over the seeds of each, and of the
paired difference multi − single (seed by seed). There is no early stopping
and no model selection on validation labels: with b labels one would not
have many to spare.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy

from ..config import ModelConfig
from ..data import load_dataset
from ..data.budget import labelled, limit_labels, task_balanced
from ..metrics import evaluate
from ..model import MultiTaskTransformer
from .trainer import TrainConfig, Trainer

# the main task and its auxiliaries, per data set
PRESETS = {"words": {"main": "stress", "auxiliaries": ["syllables", "hyphen"]},
           "digits": {"main": "digit", "auxiliaries": ["transform", "row"]}}
TEST_FRACTION = 0.15


@dataclass
class TransferConfig:
    data: str = "words"
    budgets: list = field(default_factory=lambda: [100, 300, 1000, 3000, 17000])
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    mode: str = "conditioned"
    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    d_ff: int = 128
    dropout: float = 0.1
    num_examples: int | None = 20000           # words drawn from the dictionary (words only)

    @property
    def main(self) -> str:
        return PRESETS[self.data]["main"]

    @property
    def tasks(self) -> list:
        return [self.main] + PRESETS[self.data]["auxiliaries"]


def load_splits(config: TransferConfig, seed: int):
    """(train, test) of seed ``seed``: the data set built and split with that seed (module docstring)."""
    if config.data not in PRESETS:
        raise ValueError(f"data must be one of {sorted(PRESETS)}, got {config.data!r}")
    kwargs = {"seed": seed, "tasks": config.tasks}
    if config.data == "words":
        kwargs["num_examples"] = config.num_examples
    data = load_dataset(config.data, **kwargs)
    return data.split((1.0 - TEST_FRACTION, TEST_FRACTION), seed=seed)


def budget_sets(train, main: str, budget: int, seed: int):
    """(single-task training set, multi-task training set) of one budget and seed (module docstring, 2-4)."""
    limited = limit_labels(train, main, budget, seed=seed)
    return labelled(limited, main), task_balanced(limited, main)


def train_and_score(train_set, test_set, config: TransferConfig, seed: int, batch_size: int) -> float:
    """Train one model on ``train_set``; its main-task test accuracy."""
    model = MultiTaskTransformer(ModelConfig(**train_set.model_config_kwargs(), d_model=config.d_model,
                                             num_heads=config.num_heads, num_layers=config.num_layers,
                                             d_ff=config.d_ff, dropout=config.dropout, mode=config.mode, seed=seed))
    train_config = TrainConfig(steps=config.steps, batch_size=batch_size, lr=config.lr, seed=seed,
                               warmup_steps=config.steps // 10, log_every=config.steps, eval_every=config.steps,
                               checkpoint_every=config.steps)
    Trainer(model, train_set, None, train_config, progress=False, log=lambda *args: None).fit()
    main = config.main
    return float(evaluate(model, test_set.select_tasks([main]) if len(train_set.tasks) == 1 else test_set)
                 [main]["accuracy"])


def _spread(values) -> tuple:
    values = numpy.asarray(values, dtype=numpy.float64)
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def sweep(config: TransferConfig, log=None) -> dict:
    """Run the sweep; the JSON-able results:

    {"config", "main", "auxiliaries", "train_examples", "test_examples", "majority": {mean, std},
     "rows": [{"budget", "single_mean", "single_std", "multi_mean", "multi_std",
               "difference_mean", "difference_std", "single": [per seed], "multi": [per seed]}], "seconds"}

    majority: the test accuracy of always answering the main task's most common training class.
    log: called with one line per finished pair of runs (default: nothing).
    """
    log = log or (lambda message: None)
    started = time.perf_counter()
    single = {b: [] for b in config.budgets}
    multi = {b: [] for b in config.budgets}
    majority, sizes = [], None
    num_tasks = len(config.tasks)
    for seed in config.seeds:
        train, test = load_splits(config, seed)
        sizes = len(train), len(test)
        common = numpy.bincount(train.targets[config.main]).argmax()
        majority.append(float(numpy.mean(test.targets[config.main] == common)))
        for budget in config.budgets:
            single_set, multi_set = budget_sets(train, config.main, budget, seed)
            single[budget].append(train_and_score(single_set, test, config, seed,
                                                  max(config.batch_size // num_tasks, 1)))
            multi[budget].append(train_and_score(multi_set, test, config, seed, config.batch_size))
            log(f"seed {seed} budget {budget}: single-task {single[budget][-1]:.4f}, "
                f"multi-task {multi[budget][-1]:.4f} ({time.perf_counter() - started:.0f} s)")
    rows = []
    for budget in config.budgets:
        (single_mean, single_std), (multi_mean, multi_std) = _spread(single[budget]), _spread(multi[budget])
        difference = _spread(numpy.subtract(multi[budget], single[budget]))
        rows.append({"budget": budget, "single_mean": single_mean, "single_std": single_std,
                     "multi_mean": multi_mean, "multi_std": multi_std, "difference_mean": difference[0],
                     "difference_std": difference[1], "single": single[budget], "multi": multi[budget]})
    mean, std = _spread(majority)
    return {"config": asdict(config), "main": config.main, "auxiliaries": config.tasks[1:],
            "train_examples": sizes[0], "test_examples": sizes[1], "majority": {"mean": mean, "std": std},
            "rows": rows, "seconds": time.perf_counter() - started}
