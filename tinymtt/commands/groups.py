"""tinymtt groups: which tasks should learn together? Lookahead affinity, the best groupings, and a check.

**The prediction.** One training of all the tasks, with the lookahead affinity
logged (TAG, tinymtt.mtl.affinity; every ``steps / 20`` steps) and the
task-gradient cosines beside it (tinymtt.mtl.diagnostics). Both are averaged
over the logged steps and then over the seeds. The affinity Z goes into the
grouping search (tinymtt.mtl.grouping): for every budget k = 1..T, the best
partition of the tasks into at most k groups.

**The check (``--validate``).** Every subset S of the tasks (2^T − 1 of them,
T ≤ 5) is trained with the same steps and seeds, and each task j is measured
in each subset with its one metric (the ``compare`` metric: token accuracy,
accuracy, or MSE). Task j's gain in S is the relative change against j alone,

    gain_j(S) = ± (M_j(S) − M_j({j})) / |M_j({j})| · 100      (+ = better; the sign flips for MSE),

from the seed means. In conditioned mode a batch of B examples holds about
B/T examples of each task, so a subset of |S| tasks trains with batches of
B·|S|/T: every task sees the same examples in every subset (as in ``compare``).

* Pairwise: the measured gain of j beside i, gain_j({i, j}), against three
  predictions of it -- the lookahead affinity Z_{i→j}, the gradient cosine
  cos(g_i, g_j), and the task-attention weight with which stream j reads
  stream i (a joint-mode model; in conditioned mode one more joint run per
  seed is trained for it). Each is scored by Spearman's rank correlation over
  the T(T − 1) ordered pairs (a cosine is symmetric: both orders get it).
* Per budget: the measured total Σ_j gain_j(group of j) of the grouping the
  affinity chose, beside all tasks together, every task alone (0 by
  definition), and the best grouping found by brute force over the trained
  subsets (the same search, valued by measured gains).

A relative change of an MSE near zero is large: a regression task can
dominate the totals, as it dominates ``compare``'s Δ%; each task's own gains
are in the JSON.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
from dataclasses import asdict

import numpy

from .. import backend
from ..config import ModelConfig
from ..data import make_batch
from ..model import MultiTaskTransformer
from ..mtl.affinity import mean_affinity
from ..mtl.diagnostics import ConflictLog
from ..mtl.grouping import affinity_group_value, best_partitions, groupings
from ..train import Trainer, TrainConfig
from ..train.callbacks import Callback
from .common import Command, UsageError, limit_blas_threads, text_table, writable_file
from .compare import CompareConfig, baseline_batch, train_one
from .scoring import DATA, PRIMARY, load_splits

MAX_VALIDATE_TASKS = 5     # 31 subsets
GROUP_DATA = DATA + ("words",)   # the words suite needs the extra: pip install -e ".[words]"


class _Records(Callback):
    """Keeps each logged step's record (the affinity and conflict the built-in callbacks put there)."""

    def __init__(self):
        self.records = []

    def after_step(self, trainer, step):
        if step.logging and step.record:
            self.records.append({"step": step.number, **step.record})


def _model(train_set, config, mode, seed):
    return MultiTaskTransformer(ModelConfig(**train_set.model_config_kwargs(), d_model=config.d_model,
                                            num_heads=config.num_heads, num_layers=config.num_layers,
                                            d_ff=config.d_ff, mode=mode, seed=seed))


def attention_affinity(model, dataset, rows=256) -> numpy.ndarray:
    """(T, T) host: row j = how much task j's stream reads each task's stream (joint mode), on the first rows."""
    batch = make_batch(dataset, numpy.arange(min(rows, len(dataset))), "joint")
    with model.evaluating():
        model.forward(batch)
    return backend.to_numpy(model.task_attention.affinity(batch["mask"])).astype(numpy.float64)


def affinity_run(train_set, config: CompareConfig, seed: int, with_attention: bool) -> dict:
    """One all-tasks training with affinity and conflict logging: the mean Z, cosines and attention map."""
    logged = max(config.steps // 20, 1)
    model = _model(train_set, config, config.mode, seed)
    train_config = TrainConfig(steps=config.steps, batch_size=config.batch_size, lr=config.lr,
                               warmup_steps=config.steps // 10, seed=seed, log_every=logged,
                               log_affinity=True, log_conflict=True)
    keeper = _Records()
    Trainer(model, train_set, None, train_config, progress=False, callbacks=[keeper]).fit()
    result = {"lookahead": mean_affinity([r["affinity"] for r in keeper.records]),
              "cosine": ConflictLog.from_history(keeper.records).mean_cosine(), "attention": None}
    if with_attention:
        joint = model if config.mode == "joint" else _model(train_set, config, "joint", seed)
        if joint is not model:
            Trainer(joint, train_set, None, TrainConfig(steps=config.steps, batch_size=config.batch_size,
                                                        lr=config.lr, warmup_steps=config.steps // 10, seed=seed,
                                                        log_every=config.steps), progress=False).fit()
        result["attention"] = attention_affinity(joint, train_set)
    return result


def rank_correlation(x, y) -> float:
    """Spearman's ρ: the Pearson correlation of the ranks (ties get their mean rank); NaN if either is constant."""
    def ranks(values):
        values = numpy.asarray(values, dtype=numpy.float64)
        order = numpy.argsort(values, kind="stable")
        ranked = numpy.empty(len(values))
        ranked[order] = numpy.arange(len(values), dtype=numpy.float64)
        for value in numpy.unique(values):              # ties: every member gets the mean of their ranks
            ranked[values == value] = ranked[values == value].mean()
        return ranked
    a, b = ranks(x), ranks(y)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(numpy.corrcoef(a, b)[0, 1])


def _gain(value, alone, lower_is_better) -> float:
    if alone == 0:
        return float("nan")
    return (-1.0 if lower_is_better else 1.0) * 100.0 * (value - alone) / abs(alone)


def validate(train_set, test_set, config: CompareConfig, predicted: dict, log) -> dict:
    """Train every subset; measured gains, rank correlations and per-budget totals (module docstring)."""
    tasks = train_set.tasks
    names, count = [t.name for t in tasks], len(tasks)
    lower = [PRIMARY[t.kind][1] for t in tasks]
    subsets = [s for size in range(1, count + 1) for s in itertools.combinations(range(count), size)]
    metrics = {}
    for number, subset in enumerate(subsets, 1):
        chosen = [names[i] for i in subset]
        batch = max(round(baseline_batch(config, count) * len(subset)), 1) if config.mode == "conditioned" \
            else config.batch_size
        per_seed = [train_one(train_set.select_tasks(chosen), test_set.select_tasks(chosen), "fixed", seed, config,
                              batch_size=batch)["metrics"] for seed in range(config.seeds)]
        metrics[subset] = {i: float(numpy.mean([m[names[i]] for m in per_seed])) for i in subset}
        log(f"[{number}/{len(subsets)}] {'+'.join(chosen)}: "
            + ", ".join(f"{names[i]} {v:.4f}" for i, v in metrics[subset].items()))
    gain = {s: {j: _gain(v, metrics[(j,)][j], lower[j]) for j, v in m.items()} for s, m in metrics.items()}
    pairwise = numpy.full((count, count), numpy.nan)                # [i, j]: j's gain beside i
    for i, j in itertools.permutations(range(count), 2):
        pairwise[i, j] = gain[tuple(sorted((i, j)))][j]
    pairs = list(itertools.permutations(range(count), 2))
    correlation = {}
    for notion, matrix in predicted.items():
        if matrix is None:
            correlation[notion] = None
            continue
        oriented = matrix.T if notion == "attention" else matrix    # attention row j reads column i: i → j is [j, i]
        correlation[notion] = rank_correlation([oriented[i, j] for i, j in pairs], [pairwise[i, j] for i, j in pairs])

    def measured(group) -> float:
        return 0.0 if len(group) < 2 else float(sum(gain[tuple(group)][j] for j in group))

    best = best_partitions(count, measured)
    chosen = best_partitions(count, affinity_group_value(numpy.nan_to_num(predicted["lookahead"])))
    budgets = [{"budget": k, "chosen": [[names[i] for i in g] for g in pick],
                "chosen_total": sum(measured(g) for g in pick), "all_together": measured(tuple(range(count))),
                "all_alone": 0.0, "best": [[names[i] for i in g] for g in top], "best_total": top_total}
               for (k, pick, _), (_, top, top_total) in zip(chosen, best)]
    return {"subsets": {"+".join(names[i] for i in s): {names[i]: v for i, v in m.items()} for s, m in metrics.items()},
            "gains": {"+".join(names[i] for i in s): {names[j]: v for j, v in g.items()} for s, g in gain.items()},
            "pairwise_gain": pairwise, "rank_correlation": correlation, "budgets": budgets}


def groups(config: CompareConfig, check=False, log=None) -> dict:
    """The affinity of every task pair, the groupings, and with ``check`` the validation (module docstring)."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    train_set, test_set = load_splits(config)
    count = len(train_set.tasks)
    if count < 2:
        raise ValueError(f"groups needs at least 2 tasks, got {train_set.task_names}")
    if check and count > MAX_VALIDATE_TASKS:
        raise ValueError(f"--validate trains every subset: at most {MAX_VALIDATE_TASKS} tasks "
                         f"({2 ** MAX_VALIDATE_TASKS - 1} subsets), got {count}; choose some with --tasks")
    started = time.perf_counter()
    runs = []
    for seed in range(config.seeds):
        runs.append(affinity_run(train_set, config, seed, with_attention=check or config.mode == "joint"))
        log(f"affinity run, seed {seed}: done")
    predicted = {notion: (None if runs[0][notion] is None else numpy.nanmean([r[notion] for r in runs], axis=0))
                 for notion in ("lookahead", "cosine", "attention")}
    names = train_set.task_names
    results = {"config": asdict(config), "backend": backend.get_backend(), "data": train_set.name, "tasks": names,
               "affinity": predicted["lookahead"], "cosine": predicted["cosine"], "attention": predicted["attention"],
               "groupings": groupings(numpy.nan_to_num(predicted["lookahead"]), names)}
    if check:
        results["validation"] = validate(train_set, test_set, config, predicted, log)
    results["seconds"] = time.perf_counter() - started
    return results


def _plain(value):
    """JSON-able: arrays to nested lists, NaN/inf to None."""
    if isinstance(value, numpy.ndarray):
        return _plain(value.tolist())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _matrix_table(title, names, matrix, fmt="+.4f"):
    if matrix is None:
        return f"{title}: not measured"
    rows = [[names[i]] + [("-" if not math.isfinite(v) else f"{v:{fmt}}") for v in row]
            for i, row in enumerate(numpy.asarray(matrix, dtype=float).tolist())]
    return f"{title}\n" + text_table(["from \\ to"] + list(names), rows)


def format_report(results) -> str:
    names, c = results["tasks"], results["config"]
    parts = [(f"{results['data']} ({', '.join(names)}), {c['mode']} mode, {c['seeds']} seed(s) x {c['steps']} "
              f"steps, d_model {c['d_model']}; {results['seconds']:.0f} s"),
             _matrix_table("lookahead affinity Z(i -> j), mean over training and seeds (> 0: a step for i helps j)",
                           names, results["affinity"]),
             _matrix_table("task-gradient cosine, mean over training and seeds", names, results["cosine"], "+.3f")]
    if results.get("attention") is not None:
        parts.append(_matrix_table("task attention: row j reads column i (joint mode)", names,
                                   results["attention"], ".3f"))
    parts.append(text_table(["budget", "groups (chosen by the affinity)", "score"],
                            [[g["budget"], " | ".join("+".join(group) for group in g["groups"]), f"{g['score']:+.4f}"]
                             for g in results["groupings"]]))
    check = results.get("validation")
    if check:
        parts.append(_matrix_table("measured pairwise gain of j beside i (% vs j alone)", names,
                                   check["pairwise_gain"], "+.1f"))
        rho = check["rank_correlation"]
        parts.append("rank correlation with the measured pairwise gains: "
                     + ", ".join(f"{k} {'n/a' if v is None or not math.isfinite(v) else f'{v:+.2f}'}"
                                 for k, v in rho.items()))
        parts.append(text_table(["budget", "chosen", "chosen total %", "all together %", "all alone %",
                                 "best (brute force)", "best total %"],
                                [[b["budget"], " | ".join("+".join(g) for g in b["chosen"]), f"{b['chosen_total']:+.1f}",
                                  f"{b['all_together']:+.1f}", "0", " | ".join("+".join(g) for g in b["best"]),
                                  f"{b['best_total']:+.1f}"] for b in check["budgets"]]))
    return "\n\n".join(parts)


def add_arguments(parser):
    parser.add_argument("--data", choices=GROUP_DATA, default="sequences",
                        help="built-in data set (default sequences; words needs the words extra)")
    parser.add_argument("--tasks", default=None, help="comma-separated subset of the data set's tasks (default all)")
    parser.add_argument("--steps", type=int, default=400, help="training steps per run (default 400)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--mode", choices=["conditioned", "joint"], default="conditioned")
    parser.add_argument("--d-model", type=int, default=32, help="model width (default 32)")
    parser.add_argument("--examples", type=int, default=5000, help="generated examples (sequences; default 5000)")
    parser.add_argument("--validate", action="store_true",
                        help="train every subset of the tasks and check the predictions against it")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 1 seed x 20 steps, tiny model")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    parser.add_argument("--out", default=None, help="also write the JSON to this file")
    parser.add_argument("--figure", default=None, help="draw the affinity maps (and measured gains) to this PNG")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1, as compare)")
    return parser


def _config(args) -> CompareConfig:
    for name in ("steps", "seeds", "d_model", "examples", "threads"):
        if getattr(args, name) < 1:
            raise UsageError(f"tinymtt groups: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    config = CompareConfig(data=args.data, tasks=args.tasks.split(",") if args.tasks else None, seeds=args.seeds,
                           steps=args.steps, examples=args.examples, d_model=args.d_model, d_ff=2 * args.d_model,
                           mode=args.mode, strategies=["fixed"])
    if args.quick:
        config.seeds, config.steps, config.examples = 1, 20, 400
        config.d_model, config.d_ff, config.batch_size = 16, 32, 16
    return config


def run(args) -> int:
    config = _config(args)
    for option in ("out", "figure"):
        if getattr(args, option):
            writable_file(getattr(args, option), f"--{option}")
    try:
        with limit_blas_threads(args.threads):
            results = groups(config, check=args.validate)
    except (ValueError, ImportError) as error:   # a task the data set lacks, too few or too many tasks, no extra
        raise UsageError(f"tinymtt groups: {error}") from None
    text = json.dumps(_plain(results), indent=2, allow_nan=False)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")
    if args.figure:
        from ..plots.groups import plot_groups
        plot_groups(_plain(results), args.figure)
    print(text if args.json else format_report(results))
    return 0


COMMAND = Command("groups", "which tasks should train together: lookahead affinity and groupings", add_arguments, run,
                  description="Train all tasks once with the lookahead task affinity (TAG) logged, print it and "
                              "the best grouping for every budget; --validate trains every subset to check it.")
