"""tinymtt compare: every multi-task strategy on the same tasks and seeds, against single-task baselines.

(``--architectures`` compares ways of sharing instead -- conditioned, joint, late
branching, task modules -- with their price: tinymtt.commands.architectures.)

For each seed s and each strategy m, one model (seed s, batch order s) trains
``steps`` steps on the same training set; then every task t is trained alone
(the single-task baseline b, same steps, batch size and seeds). On the test
split each task gets one metric M_t: token accuracy (token tasks), accuracy
(sequence tasks), mean squared error (regression tasks, lower is better). The
table gives each as mean ± std over the seeds, and the relative gain over the
baselines as multi-task papers report it (Maninis et al. 2019; Liu et al. 2021):

    Δ_m = (1/T) Σ_t (−1)^{l_t} (M_m,t − M_b,t) / M_b,t · 100      l_t = 1 when lower is better

from the seed means (the ± is the std of the same formula applied seed by
seed, seed s against baseline seed s). Δ_m > 0: multi-task training helped on
average; Δ_m < 0: negative transfer. Also: milliseconds per training step
(the gradient methods run T backward passes a step), and the conflict measured
along the run (tinymtt.train.ConflictProbe): every ``probe_every`` steps the cosine
of the task gradients on a fixed probe batch (64 training examples per task).

Same budget: the same steps, and the same number of examples *of each task*.
In conditioned mode a multi-task batch of B examples holds about B/T of each
task (uniform task sampling), so a baseline trains with batches of B/T
(``baseline_batch``; in joint mode every example has every target, and the
baseline batch is B). Each task then sees the same data in both runs, the T
baselines together cost what the multi-task run costs, and Δ_m measures what
sharing one network does -- transfer or conflict -- not a difference in data.
(With baselines at batch B, each would see T times the data of its task.)

The ``conflict`` data set (tinymtt.data.conflict): the sequence suite's inputs
with tasks built to pull the shared encoder apart. Max and min conflict while
the encoder is too small to serve both; with room to spare they stop
conflicting -- over 3 seeds × 400 steps, the mean cosine of max vs min was
−0.14 at d_model 8 (< 0 at 70 % of probes, and −9 % vs the single-task
baselines), −0.05 at d_model 16, and +0.10 at d_model 32 (both tasks solved,
their gradients then agree on sharpening the shared features). So ``--data
conflict`` trains max and min on a d_model 8 encoder by default; ``--tasks``
picks among CONFLICT_TASKS and ``--d-model`` changes the width.

Speed: the matrices here are tiny, and a multi-threaded BLAS (OpenBLAS) spends
more on threads than on math -- we measured 5-20× slower training steps with
its default threads on a 2-core machine. ``--threads`` (default 1) pins BLAS
to that many threads when threadpoolctl is installed (tinymtt.commands.common);
otherwise set OMP_NUM_THREADS=1 before starting Python.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy

from .. import backend
from ..config import ModelConfig
from ..data import CONFLICT_TASKS, make_batch
from ..metrics import evaluate
from ..model import MultiTaskTransformer
from ..mtl import STRATEGIES
from ..plots.canvas import figure_class
from ..plots.costs import plot_architectures
from ..train import ConflictProbe, StepTimer, Trainer, TrainConfig
from .common import Command, UsageError, limit_blas_threads, text_table, writable_file
from .architectures import ARCHITECTURES, compare_architectures, format_architectures
from .scoring import DATA, PRIMARY, load_splits, relative_gain  # noqa: F401  (relative_gain re-exported)

CONFLICT_D_MODEL = 8                           # the conflict preset's default width (module docstring)


@dataclass
class CompareConfig:
    data: str = "sequences"
    tasks: list | None = None                  # None: the data set's tasks (conflict: max, min)
    strategies: list = field(default_factory=lambda: list(STRATEGIES))
    seeds: int = 3
    steps: int = 400
    examples: int = 5000                       # generated examples (sequences, conflict); 80 % train, 20 % test
    batch_size: int = 64
    lr: float = 3e-3
    d_model: int = 32
    num_heads: int = 2
    num_layers: int = 1
    d_ff: int = 64
    mode: str = "conditioned"
    baselines: bool = True
    baseline_batch: int | None = None          # None: batch_size // T in conditioned mode, batch_size in joint
    probe_every: int = 40                      # conflict probe every this many steps (0: never; CLI: steps // 10)


def probe_batch(dataset, mode, per_task=64):
    """The first ``per_task`` examples of each task (conditioned) or of the set (joint)."""
    if mode == "joint":
        return make_batch(dataset, numpy.arange(min(per_task, len(dataset))), "joint")
    rows, ids = [], []
    for index, name in enumerate(dataset.task_names):
        having = numpy.flatnonzero(dataset.present[name])[:per_task]
        rows.append(having)
        ids.append(numpy.full(len(having), index))
    return make_batch(dataset, numpy.concatenate(rows), "conditioned", task_ids=numpy.concatenate(ids))


def baseline_batch(config: CompareConfig, num_tasks: int) -> int:
    """The single-task baselines' batch size: the examples of one task in a multi-task batch (module docstring)."""
    if config.baseline_batch is not None:
        return config.baseline_batch
    return config.batch_size if config.mode == "joint" else max(config.batch_size // num_tasks, 1)


def train_one(train_set, test_set, strategy: str, seed: int, config: CompareConfig, batch_size=None) -> dict:
    """One run: {"metrics": {task: M_t}, "ms_per_step", "conflict": ConflictLog.to_dict() or None}."""
    model = MultiTaskTransformer(ModelConfig(**train_set.model_config_kwargs(), d_model=config.d_model,
                                             num_heads=config.num_heads, num_layers=config.num_layers,
                                             d_ff=config.d_ff, mode=config.mode, seed=seed))
    train_config = TrainConfig(steps=config.steps, batch_size=batch_size or config.batch_size, lr=config.lr,
                               warmup_steps=config.steps // 10, strategy=strategy, seed=seed, log_every=config.steps)
    timer, probe = StepTimer(), None
    if config.probe_every > 0 and model.config.num_tasks > 1:
        probe = ConflictProbe(probe_batch(train_set, config.mode), config.probe_every, model.config.task_names)
    Trainer(model, train_set, None, train_config, progress=False, callbacks=[timer] + ([probe] if probe else [])).fit()
    metrics = evaluate(model, test_set)
    primary = {t.name: metrics[t.name][PRIMARY[t.kind][0]] for t in model.config.tasks}
    return {"metrics": primary, "ms_per_step": 1000.0 * timer.seconds / config.steps,
            "conflict": probe.log.to_dict() if probe and len(probe.log) else None}


def _summary(values):
    values = numpy.asarray(values, dtype=numpy.float64)
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return {"mean": float(values.mean()), "std": std, "values": values.tolist()}


def compare(config: CompareConfig, log=None) -> dict:
    """Run every strategy and the baselines; returns the JSON-able results (see ``summarize``).

    log: called with one line per finished run (default: print to stderr).
    """
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    unknown = sorted(set(config.strategies) - set(STRATEGIES))
    if unknown or not config.strategies:
        raise ValueError(f"strategies must list names from {list(STRATEGIES)}, got {config.strategies}")
    train_set, test_set = load_splits(config)
    seeds = range(config.seeds)
    jobs = [(name, seed) for seed in seeds for name in config.strategies]
    if config.baselines:
        jobs += [(f"single:{t.name}", seed) for seed in seeds for t in train_set.tasks]
    runs, started = {}, time.perf_counter()
    for number, (name, seed) in enumerate(jobs, 1):
        if name.startswith("single:"):
            task = name.split(":", 1)[1]
            result = train_one(train_set.select_tasks([task]), test_set.select_tasks([task]), "fixed", seed, config,
                               batch_size=baseline_batch(config, len(train_set.tasks)))
        else:
            result = train_one(train_set, test_set, name, seed, config)
        runs[(name, seed)] = result
        log(f"[{number}/{len(jobs)}] {name} seed {seed}: {result['ms_per_step']:.1f} ms/step, "
            + ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items()))
    results = summarize(runs, config, train_set, test_set)
    results["seconds"] = time.perf_counter() - started
    return results


def summarize(runs: dict, config: CompareConfig, train_set, test_set) -> dict:
    """The results from {(strategy or "single:TASK", seed): train_one(...)}.

    {"config", "backend", "data", "tasks": [{name, kind, metric, lower_is_better}], "train_examples",
     "test_examples", "baseline_batch", "baseline": {"metrics": {task: {mean, std, values}}, "ms_per_step"} or None,
     "strategies": {name: {"metrics", "ms_per_step", "conflict": [ConflictLog dict per seed],
                           "mean_cosine": {"cosine", "conflict_share"} or None,
                           "delta": {"value", "std", "per_seed", "per_task"} (with baselines)}}}
    """
    tasks, seeds = train_set.tasks, range(config.seeds)
    lower = {t.name: PRIMARY[t.kind][1] for t in tasks}
    results = {"config": asdict(config), "backend": backend.get_backend(), "data": train_set.name,
               "tasks": [{"name": t.name, "kind": t.kind, "metric": PRIMARY[t.kind][0],
                          "lower_is_better": lower[t.name]} for t in tasks],
               "train_examples": len(train_set), "test_examples": len(test_set),
               "baseline_batch": baseline_batch(config, len(tasks)), "baseline": None, "strategies": {}}
    if config.baselines:
        single = {t.name: [runs[(f"single:{t.name}", s)] for s in seeds] for t in tasks}
        base_runs = {task: [r["metrics"][task] for r in rs] for task, rs in single.items()}
        base_mean = {task: float(numpy.mean(values)) for task, values in base_runs.items()}
        results["baseline"] = {"metrics": {task: _summary(values) for task, values in base_runs.items()},
                               "ms_per_step": float(numpy.mean([r["ms_per_step"] for rs in single.values()
                                                                for r in rs]))}
    for name in config.strategies:
        per_seed = [runs[(name, s)] for s in seeds]
        entry = {"metrics": {t.name: _summary([r["metrics"][t.name] for r in per_seed]) for t in tasks},
                 "ms_per_step": float(numpy.mean([r["ms_per_step"] for r in per_seed])),
                 "conflict": [r["conflict"] for r in per_seed]}
        entry["mean_cosine"] = _mean_cosine(entry["conflict"])
        if config.baselines:
            means = {task: entry["metrics"][task]["mean"] for task in base_mean}
            seedwise = [relative_gain(r["metrics"], {task: base_runs[task][i] for task in base_runs}, lower)
                        for i, r in enumerate(per_seed)]
            entry["delta"] = {"value": relative_gain(means, base_mean, lower), "std": _summary(seedwise)["std"],
                              "per_seed": seedwise,
                              "per_task": {task: relative_gain({task: means[task]}, {task: base_mean[task]}, lower)
                                           for task in base_mean}}
        results["strategies"][name] = entry
    return results


def _mean_cosine(logs):
    """Over seeds and task pairs: the mean cosine, and the mean share of probes where the pair conflicted."""
    pairs = [p for log in logs if log for p in log["pairs"] if p["mean_cosine"] is not None]
    if not pairs:
        return None
    return {"cosine": float(numpy.mean([p["mean_cosine"] for p in pairs])),
            "conflict_share": float(numpy.mean([p["conflict_share"] for p in pairs]))}


def _finite(value):
    """The results with every NaN/inf as None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _percent(value):
    return f"{value:+.1f}%" if value is not None and math.isfinite(value) else "n/a"


def format_table(results: dict) -> str:
    """The comparison as a text table: the baselines first, then one row per strategy.

    A strategy's metric cell reads "mean ± std (relative change vs the baseline,
    sign flipped for ↓ metrics)"; the Δ% column is the mean of those changes.
    """
    c, tasks = results["config"], results["tasks"]
    arrows = {True: "↓", False: "↑"}
    header = (["strategy"] + [f"{t['name']} {t['metric']} {arrows[t['lower_is_better']]}" for t in tasks]
              + ["Δ% vs single", "ms/step", "task-grad cos (share < 0)"])

    def cells(metrics, relative=None):
        out = []
        for t in tasks:
            m, fmt = metrics[t["name"]], ".5f" if t["lower_is_better"] else ".3f"
            text = f"{m['mean']:{fmt}} ± {m['std']:{fmt}}"
            out.append(text + (f" ({_percent(relative[t['name']])})" if relative else ""))
        return out

    rows = []
    if results["baseline"]:
        rows.append(["single-task"] + cells(results["baseline"]["metrics"])
                    + ["0 (baseline)", f"{results['baseline']['ms_per_step']:.1f}", "-"])
    for name, entry in results["strategies"].items():
        delta, conflict = entry.get("delta"), entry.get("mean_cosine")
        rows.append([name] + cells(entry["metrics"], delta["per_task"] if delta else None)
                    + [f"{_percent(delta['value'])} ± {delta['std']:.1f}" if delta else "-",
                       f"{entry['ms_per_step']:.1f}",
                       f"{conflict['cosine']:+.3f} ({100 * conflict['conflict_share']:.0f}%)" if conflict else "-"])
    title = (f"{results['data']} ({', '.join(t['name'] for t in tasks)}), {c['mode']} mode, {c['seeds']} seed(s) x "
             f"{c['steps']} steps, batch {c['batch_size']} (single-task baselines: {results['baseline_batch']}), "
             f"d_model {c['d_model']}, {c['num_layers']} layer(s); test set of {results['test_examples']}; "
             f"{results['backend']}; {results['seconds']:.0f} s in all")
    notes = ("mean ± std over seeds; in brackets the relative change vs the single-task baseline (+ = better). "
             "Δ%: the mean of those changes (Δ_m, from the seed means; ± over seeds).\n"
             "task-grad cos: cosine of the task gradients on the shared parameters, probed along the run, "
             "averaged over task pairs; in brackets the share of probes where a pair conflicted (cos < 0).")
    return "\n".join([title, "", text_table(header, rows), "", notes])


def add_arguments(parser):
    parser.add_argument("--data", choices=DATA, default="sequences",
                        help="built-in data set, or 'conflict': tasks built to conflict (max vs min by default)")
    parser.add_argument("--tasks", default=None, help="comma-separated subset of the data set's tasks "
                        f"(conflict: from {','.join(CONFLICT_TASKS)})")
    parser.add_argument("--strategies", default=None, help="comma-separated (default: all)")
    parser.add_argument("--architectures", action="store_true",
                        help="compare ways of sharing instead of strategies: conditioned, joint, joint with one "
                             "branch layer, task-norm, lora, mmoe, single-task (tinymtt.commands.architectures); "
                             "each row gives parameters, FLOPs and ms per step")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--steps", type=int, default=400, help="training steps per run (default 400)")
    parser.add_argument("--examples", type=int, default=5000,
                        help="generated examples (sequences, conflict; default 5000, 80%% train, 20%% test)")
    parser.add_argument("--batch-size", type=int, default=64, help="multi-task batch size (default 64; the "
                        "single-task baselines get batch-size / T in conditioned mode, see tinymtt.commands.compare)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    parser.add_argument("--d-model", type=int, default=None,
                        help="model width (default 32; 8 for --data conflict: the tasks must share a small encoder)")
    parser.add_argument("--layers", type=int, default=None, help="encoder layers (default 1; 2 with --architectures)")
    parser.add_argument("--mode", choices=["conditioned", "joint"], default=None, help="default conditioned")
    parser.add_argument("--no-baselines", action="store_true", help="skip the single-task runs (no Δ%%)")
    parser.add_argument("--probe-every", type=int, default=None, help="conflict probe period in steps (default steps / 10; 0: off)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 2 seeds × 12 steps, tiny model (--architectures: 2 seeds × 150 steps, "
                        "d_model 16, under a minute)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    parser.add_argument("--out", default=None, help="also write the JSON results to this file")
    parser.add_argument("--figure", default=None,
                        help="with --architectures: also draw each task's metric against FLOPs per step (PNG)")
    parser.add_argument("--backend", choices=["numpy", "cupy"], default=None)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1, see tinymtt.commands.compare)")
    return parser


def _config(args) -> CompareConfig:
    if args.architectures:
        given = [name for name, value in (("--strategies", args.strategies), ("--mode", args.mode),
                                          ("--no-baselines", args.no_baselines or None),
                                          ("--probe-every", args.probe_every)) if value is not None]
        if given:
            raise UsageError(f"tinymtt compare --architectures: {given[0]} does not apply (every architecture "
                             f"sets its own mode, trains with the fixed strategy and has single-task baselines)")
    args.strategies = ",".join(STRATEGIES) if args.strategies is None else args.strategies
    args.mode = args.mode or "conditioned"
    if args.layers is None:
        args.layers = 2 if args.architectures else 1
    if args.d_model is None:
        args.d_model = CONFLICT_D_MODEL if args.data == "conflict" else 32
    for name in ("seeds", "steps", "examples", "batch_size", "d_model", "layers", "threads"):
        if getattr(args, name) < 1:
            raise UsageError(f"tinymtt compare: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise UsageError(f"tinymtt compare: --lr must be a positive number, got {args.lr}")
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    config = CompareConfig(data=args.data, tasks=args.tasks.split(",") if args.tasks else None,
                           strategies=strategies, seeds=args.seeds, steps=args.steps, examples=args.examples,
                           batch_size=args.batch_size, lr=args.lr, d_model=args.d_model, num_layers=args.layers,
                           d_ff=2 * args.d_model, mode=args.mode, baselines=not args.no_baselines)
    if args.quick and args.architectures:   # a short run that still trains: about a minute
        config.seeds, config.steps, config.examples = min(args.seeds, 2), 150, 1000
        config.d_model, config.d_ff, config.batch_size = 16, 32, 32
    elif args.quick:
        config.seeds, config.steps, config.examples = min(args.seeds, 2), 12, 400
        config.d_model, config.d_ff, config.batch_size = 16, 32, 16
    if args.probe_every is not None and args.probe_every < 0:
        raise UsageError(f"tinymtt compare: --probe-every must be >= 0, got {args.probe_every}")
    config.probe_every = max(config.steps // 10, 1) if args.probe_every is None else args.probe_every
    return config


def run(args) -> int:
    """0 on success; a bad option or value is a UsageError (exit 2)."""
    config = _config(args)
    if args.out:
        writable_file(args.out, "--out")      # found now, not after all the training
    if args.figure:
        if not args.architectures:
            raise UsageError("tinymtt compare: --figure applies to --architectures only")
        writable_file(args.figure, "--figure")
        figure_class()                        # matplotlib missing: one line now, not after the training
    if args.backend:
        backend.use(args.backend)
    with limit_blas_threads(args.threads):
        results = compare_architectures(config, tuple(ARCHITECTURES)) if args.architectures else compare(config)
    text = json.dumps(_finite(results), indent=2, allow_nan=False)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")
    if args.figure:
        plot_architectures(results, args.figure)
    print(text if args.json else (format_architectures if args.architectures else format_table)(results))
    return 0


COMMAND = Command("compare", "every balancing strategy on the same tasks and seeds", add_arguments, run,
                  description="Train every multi-task strategy on the same tasks and seeds, beside single-task "
                              "baselines, and print one table.")
