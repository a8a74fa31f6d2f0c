"""``tinymtt train``, ``tinymtt eval RUN`` and ``tinymtt demo RUN``: a run folder made, measured and shown.

    tinymtt train [options]        train a multi-task model (defaults: the sequence suite), print per-task metrics
    tinymtt eval RUN               per-task metrics of a trained run
    tinymtt demo RUN               a few inputs with each task's prediction and target

The run folder's files: tinymtt.commands.runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy

from .. import backend
from ..config import ModelConfig
from ..metrics import evaluate, predict
from ..model import MultiTaskTransformer
from ..mtl import STRATEGIES
from ..nn import TASK_MODULES
from ..plots.gates import plot_gates
from ..plots.history import plot_affinity, plot_conflict, plot_history
from ..train import TrainConfig, Trainer
from .common import Command, UsageError, text_table, writable_folder
from .compare import probe_batch
from .runs import data_splits, load_run, read_config, write_config


# -- option types ----------------------------------------------------------------------------
def positive(kind):
    """An argparse type: a number of ``kind`` (int or float) that is > 0."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def task_weights(text):
    """'sort=1,max=0.5' -> {'sort': 1.0, 'max': 0.5}."""
    weights = {}
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected task=weight pairs like sort=1,max=0.5, got {text!r}") from None
        if not 0 <= weights[name.strip()] < float("inf"):      # a negative weight would be gradient ascent
            raise argparse.ArgumentTypeError(f"a task weight must be >= 0 and finite, got {part!r}")
    if weights and not any(weights.values()):
        raise argparse.ArgumentTypeError(f"at least one task weight must be > 0 (all zero trains nothing), got {text!r}")
    return weights


def key_value(text):
    """'alpha=1.5' -> ('alpha', 1.5): an int, a float, true/false, none, or else the text itself."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value like alpha=1.5, got {text!r}")
    value = value.strip()
    words = {"true": True, "false": False, "none": None}
    if value.lower() in words:
        return key.strip(), words[value.lower()]
    for kind in (int, float):
        try:
            return key.strip(), kind(value)
        except ValueError:
            pass
    return key.strip(), value


def metrics_table(metrics: dict, tasks) -> str:
    kinds = {t.name: t.kind for t in tasks}
    rows = [(task, kinds.get(task, ""), metric, f"{value:.4f}")
            for task, values in metrics.items() for metric, value in values.items()]
    return text_table(("task", "kind", "metric", "value"), rows)


# -- tinymtt train ----------------------------------------------------------------------------
# Every option's default is None in the parser, so that ``--resume`` knows what was given; the real defaults:
DEFAULTS = {"data": "sequences", "examples": 20000, "mode": "conditioned", "d_model": 64, "heads": 4, "layers": 2,
            "dropout": 0.0, "steps": 2000, "batch_size": 64, "lr": 3e-3, "strategy": "fixed",
            "sampling": "uniform", "seed": 0, "task_module": "none"}
# what a resumed run cannot change (it would be another run), and where its stored value is
FIXED_ON_RESUME = {"data": ("data", "name"), "tasks": ("data", "tasks"), "examples": ("data", "num_examples"),
                   "mode": ("model", "mode"), "d_model": ("model", "d_model"), "heads": ("model", "num_heads"),
                   "layers": ("model", "num_layers"), "d_ff": ("model", "d_ff"), "dropout": ("model", "dropout"),
                   "task_hidden": ("model", "task_hidden"), "seed": ("model", "seed"),
                   "task_module": ("model", "task_module"), "lora_rank": ("model", "lora_rank"), "lora_ffn": ("model", "lora_ffn"),
                   "experts": ("model", "num_experts"), "branch_layers": ("model", "branch_layers"),
                   "batch_size": ("train", "batch_size"), "weights": ("train", "weights"),
                   "strategy": ("train", "strategy"), "strategy_option": ("train", "strategy_options"),
                   "sampling": ("train", "sampling")}
RESUME_HELP = ("continue the run in --out from its checkpoint. --steps N continues to step N, --lr sets the peak "
               "learning rate, --log-every, --log-conflict, --log-affinity, --backend and --no-progress apply; the learning-rate schedule "
               "(warmup, then cosine to 1e-4) is re-planned for the new --steps, so the steps still to come get "
               "the learning rate a run of N steps from the start would have had. Options that define the run "
               "(data, tasks, examples, mode, model sizes, task module, branch layers, dropout, seed, batch size, weights, "
               "strategy, sampling) "
               "cannot change")


def add_train_arguments(train):
    train.add_argument("--data", choices=["sequences", "digits", "words"], default=None,
                       help="built-in data set (default sequences; words needs the extra: pip install 'tinymtt[words]')")
    train.add_argument("--tasks", default=None, help="comma-separated subset of the data set's tasks (default all)")
    train.add_argument("--examples", type=positive(int), default=None,
                       help="generated examples (sequences) or words drawn from the dictionary (words); default 20000")
    train.add_argument("--mode", choices=["conditioned", "joint"], default=None, help="default conditioned")
    train.add_argument("--d-model", type=positive(int), default=None, help="default 64")
    train.add_argument("--heads", type=positive(int), default=None, help="default 4")
    train.add_argument("--layers", type=positive(int), default=None, help="default 2")
    train.add_argument("--d-ff", type=positive(int), default=None, help="default 4 × d-model")
    train.add_argument("--dropout", type=float, default=None, help="default 0")
    train.add_argument("--task-hidden", type=positive(int), default=None, help="hidden ReLU layer in the task encoder")
    train.add_argument("--task-module", choices=TASK_MODULES, default=None,
                       help="a task-specific module in every block (docs/DESIGN.md, \"Task modules\"): task-norm "
                            "(LayerNorm γ, β from a task embedding), lora (per-task low-rank updates of the attention "
                            "projections), mmoe (shared expert FFNs, a per-task gate); default none")
    train.add_argument("--lora-rank", type=positive(int), default=None, help="rank r of --task-module lora (default 4)")
    train.add_argument("--lora-ffn", action="store_true", default=None,
                       help="with --task-module lora: the FFN's two linears get per-task updates too")
    train.add_argument("--experts", type=positive(int), default=None, help="experts E of --task-module mmoe (default 2)")
    train.add_argument("--branch-layers", type=positive(int), default=None,
                       help="joint mode: only the last K blocks run per task stream, the first L-K once per example "
                            "(1..--layers; default all)")
    train.add_argument("--steps", type=positive(int), default=None, help="default 2000")
    train.add_argument("--batch-size", type=positive(int), default=None, help="default 64")
    train.add_argument("--lr", type=positive(float), default=None, help="peak learning rate (default 0.003)")
    train.add_argument("--weights", type=task_weights, default=None,
                       help="task loss weights for --strategy fixed, e.g. sort=1,mean=2")
    train.add_argument("--strategy", choices=STRATEGIES, default=None,
                       help="how the task losses or gradients are combined (tinymtt.mtl); default: fixed")
    train.add_argument("--strategy-option", type=key_value, action="append", default=None, metavar="KEY=VALUE",
                       help="an option of the strategy, e.g. alpha=1.5 (gradnorm), c=0.4 (cagrad), window=20 (dwa), "
                            "normalization=l2 (mgda), variant=loss (imtl), beta=0.5 (dbmtl, gradvac), lr=0.025 "
                            "(famo); repeat for several")
    train.add_argument("--sampling", choices=["uniform", "proportional", "temperature"], default=None,
                       help="default uniform")
    train.add_argument("--seed", type=int, default=None, help="default 0")
    train.add_argument("--backend", choices=["numpy", "cupy"], default=None, help="default: $TINYMTT_BACKEND or numpy")
    train.add_argument("--out", default=None, help="run folder (default runs/DATA-MODE-seedSEED, "
                                                    "runs/DATA-MODE-STRATEGY-seedSEED for a strategy other than fixed)")
    train.add_argument("--resume", action="store_true", help=RESUME_HELP)
    train.add_argument("--force", action="store_true",
                       help="start a new run in a --out that holds one: its run files are deleted first")
    train.add_argument("--log-conflict", action="store_true",
                       help="log task-gradient cosines at each logged step and plot conflict.png (T extra backward passes)")
    train.add_argument("--log-every", type=positive(int), default=None,
                       help="write a history line (and measure --log-conflict, --log-affinity) every N steps (default 25)")
    train.add_argument("--log-affinity", action="store_true",
                       help="log the lookahead task affinity (TAG) at each logged step and plot affinity.png "
                            "(T extra backward and T + 1 forward passes)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")


RUN_FILES = ("config.json", "history.jsonl", "model.npz", "trainer.npz", "metrics.json", "curves.png", "conflict.png",
             "affinity.png", "gates.png")


def _given_value(args, option):
    """The value of a fixed option as the run folder stores it."""
    value = getattr(args, option)
    if option == "tasks":
        return [name.strip() for name in value.split(",") if name.strip()]
    if option == "strategy_option":
        return dict(value)
    return value


def resumed_configs(args, document):
    """(model config, train config, data args, lines saying what changed) of ``--resume``: the stored ones,
    with the options that may change."""
    model_config, train_config, data_args = document["model"], document["train"], document["data"]
    stored = {"model": model_config.to_dict(), "train": train_config.to_dict(), "data": data_args}
    for option, (part, key) in FIXED_ON_RESUME.items():
        if getattr(args, option) is None:
            continue
        given, kept = _given_value(args, option), stored[part].get(key)
        if key == "d_ff" and kept is None:
            kept = model_config.d_ff
        if given != kept:
            name = "--" + option.replace("_", "-")
            shown = "every task" if option == "tasks" and kept is None else repr(kept)
            raise UsageError(f"tinymtt train --resume: {name} cannot change in a resumed run: the run has {shown}, "
                             f"given {given!r} (start a new run with another --out)")
    changes = {}
    if args.steps is not None and args.steps != train_config.steps:
        changes.update(steps=args.steps, eval_every=max(args.steps // 4, 1), checkpoint_every=max(args.steps // 4, 1))
    if args.lr is not None and args.lr != train_config.lr:
        changes["lr"] = args.lr
    if args.log_every is not None and args.log_every != train_config.log_every:
        changes["log_every"] = args.log_every
    for flag in ("log_conflict", "log_affinity"):
        if getattr(args, flag) and not getattr(train_config, flag):
            changes[flag] = True
    applied = [f"resume: {key} {getattr(train_config, key)} -> {changes[key]}"
               for key in ("steps", "lr", "log_every", "log_conflict", "log_affinity") if key in changes]
    return model_config, dataclasses.replace(train_config, **changes), data_args, applied


def check_task_options(args):
    """--branch-layers, --lora-rank and --experts need the mode or module they size: one clear line each."""
    if args.branch_layers is not None:
        if args.mode != "joint":
            raise UsageError(f"tinymtt train: --branch-layers applies to --mode joint only (conditioned mode runs "
                             f"no task streams), got --branch-layers {args.branch_layers} with --mode {args.mode}")
        if args.branch_layers > args.layers:
            raise UsageError(f"tinymtt train: --branch-layers must lie in 1..--layers ({args.layers}), "
                             f"got {args.branch_layers}")
    for option, module in (("lora_rank", "lora"), ("lora_ffn", "lora"), ("experts", "mmoe")):
        if getattr(args, option) is not None and args.task_module != module:
            raise UsageError(f"tinymtt train: --{option.replace('_', '-')} applies to --task-module {module} only, "
                             f"got --task-module {args.task_module}")


def new_run_folder(out: Path, force: bool) -> Path:
    """The folder of a new run, checked before any work: it takes files and holds no other run (unless --force)."""
    writable_folder(out, "--out")
    used = [name for name in RUN_FILES if (out / name).exists()]
    if used and not force:
        raise UsageError(f"tinymtt train: {out} already holds a run ({', '.join(used)}): continue it with --resume, "
                         f"choose another folder with --out, or start over with --force (deletes those files)")
    for name in used:
        (out / name).unlink()
    return out


def run_train(args) -> int:
    if args.backend:
        backend.use(args.backend)
    if args.resume and args.force:
        raise UsageError("tinymtt train: --resume and --force exclude each other (continue the run, or start over)")
    if args.resume:
        if args.out is None:
            raise UsageError("tinymtt train: --resume needs --out RUN (the run folder to continue)")
        out = Path(args.out)
        model_config, train_config, data_args, applied = resumed_configs(args, read_config(out))
        writable_folder(out, "--out")
        if not (out / "trainer.npz").exists():
            raise UsageError(f"tinymtt train --resume: {out} has no checkpoint (trainer.npz) to continue from")
    else:
        if args.examples is not None and args.data not in (None, "sequences", "words"):
            raise UsageError(f"tinymtt train: --examples applies to --data sequences and words only (digits has a "
                             f"fixed set), got --examples {args.examples} with --data {args.data}")
        for key, value in DEFAULTS.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
        check_task_options(args)
        strategy = "" if args.strategy == "fixed" else f"-{args.strategy}"
        out = new_run_folder(Path(args.out or f"runs/{args.data}-{args.mode}{strategy}-seed{args.seed}"), args.force)
        tasks = [name.strip() for name in args.tasks.split(",") if name.strip()] if args.tasks is not None else None
        if tasks == []:
            raise UsageError(f"tinymtt train: --tasks expected comma-separated task names, got {args.tasks!r} "
                             f"(leave --tasks out for every task)")
        data_args = {"name": args.data, "seed": args.seed, "tasks": tasks}
        if args.data in ("sequences", "words"):
            data_args["num_examples"] = args.examples
    train_set, val_set, test_set = data_splits(data_args)
    if min(len(train_set), len(val_set), len(test_set)) == 0:
        raise UsageError(f"tinymtt train: --examples {args.examples} is too few: the split into train, validation "
                         f"and test (90/5/5 %) leaves {len(train_set)}, {len(val_set)} and {len(test_set)} examples")
    if not args.resume:
        model_config = ModelConfig(**train_set.model_config_kwargs(), d_model=args.d_model, num_heads=args.heads,
                                   num_layers=args.layers, d_ff=args.d_ff or 4 * args.d_model, dropout=args.dropout,
                                   mode=args.mode, task_hidden=args.task_hidden, seed=args.seed,
                                   task_module=args.task_module, lora_rank=args.lora_rank or 4,
                                   num_experts=args.experts or 2, branch_layers=args.branch_layers,
                                   lora_ffn=bool(args.lora_ffn))
        train_config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, weights=args.weights,
                                   strategy=args.strategy, strategy_options=dict(args.strategy_option or []) or None,
                                   sampling=args.sampling, seed=args.seed, warmup_steps=min(100, args.steps // 10),
                                   eval_every=max(args.steps // 4, 1), checkpoint_every=max(args.steps // 4, 1),
                                   log_conflict=args.log_conflict, log_affinity=args.log_affinity,
                                   log_every=args.log_every or 25)
    model = MultiTaskTransformer(model_config)
    trainer = Trainer(model, train_set, val_set, train_config, out_dir=out, progress=not args.no_progress)
    if not args.resume:
        write_config(out, model_config, train_config, data_args, backend.get_backend())
        trainer.save()          # a step-0 checkpoint: the folder works with eval, demo and --resume from now on
    else:
        trainer.resume()
        if trainer.step > train_config.steps:
            raise UsageError(f"tinymtt train --resume: --steps {train_config.steps} is behind the run, which is at "
                             f"step {trainer.step}")
        for line in applied:        # printed only now that they are known to apply
            print(line)
        write_config(out, model_config, train_config, data_args, backend.get_backend())
        print(f"resuming {out} at step {trainer.step} of {train_config.steps}")
    print(f"training {model.num_parameters():,} parameters on {train_set.name} ({len(train_set):,} examples, "
          f"tasks {', '.join(model_config.task_names)}), {model_config.mode} mode, {train_config.strategy} strategy, "
          f"{backend.get_backend()} backend")
    trainer.fit()
    metrics = evaluate(model, test_set)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    title = f"{train_set.name}, {model_config.mode} mode"
    plot = plot_history(out / "history.jsonl", out / "curves.png", title=title)
    if train_config.log_conflict and plot:
        plot_conflict(out / "history.jsonl", out / "conflict.png", title=title)
    if train_config.log_affinity and plot:
        plot_affinity(out / "history.jsonl", out / "affinity.png", title=title)
    if model_config.task_module == "mmoe" and plot:
        gates = model.gate_affinity(probe_batch(test_set, model_config.mode))
        plot_gates([backend.to_numpy(g) for g in gates], model_config.task_names, out / "gates.png",
                   title=f"{title}: MMoE gates on the test split")
    print(f"\ntest metrics after {trainer.step} steps ({trainer.elapsed:.0f} s):")
    print(metrics_table(metrics, model_config.tasks))
    print(f"\nrun folder: {out}" + ("" if plot else "  (install matplotlib for curves.png)"))
    return 0


# -- tinymtt eval RUN -----------------------------------------------------------------------
def add_eval_arguments(evaluate_parser):
    evaluate_parser.add_argument("run", help="run folder written by tinymtt train")
    evaluate_parser.add_argument("--split", choices=["train", "val", "test"], default="test")
    evaluate_parser.add_argument("--json", action="store_true", help="print {task: {metric: value}} as JSON")


def run_eval(args) -> int:
    model, document = load_run(args.run)
    split = dict(zip(("train", "val", "test"), data_splits(document["data"])))[args.split]
    metrics = evaluate(model, split)
    print(json.dumps(metrics, indent=2) if args.json else metrics_table(metrics, model.config.tasks))
    return 0


# -- tinymtt demo RUN -------------------------------------------------------------------------
def add_demo_arguments(demo):
    demo.add_argument("run", help="run folder written by tinymtt train")
    demo.add_argument("--examples", type=positive(int), default=5)


def _shown(values, kind, length):
    """A target or prediction as text: token ids, a class id, or regression values."""
    if kind == "token":
        return " ".join(str(int(v)) for v in values[:length])
    if kind == "sequence":
        return str(int(values))
    return " ".join(f"{float(v):.3f}" for v in numpy.ravel(values))


def run_demo(args) -> int:
    model, document = load_run(args.run)
    test = data_splits(document["data"])[2]
    rows = numpy.arange(min(args.examples, len(test)))
    predictions = {t.name: predict(model, test, rows, t.name) for t in model.config.tasks}
    for row in rows:
        length = int(test.lengths[row])
        if test.vocab_size is not None:
            shown = " ".join(str(int(v)) for v in test.inputs[row, :length])
        else:
            shown = f"{length} rows of {test.inputs.shape[-1]} values"
        print(f"input  {shown}")
        for t in model.config.tasks:
            target, guess = test.targets[t.name][row], predictions[t.name][row]
            if t.kind == "token":
                mark = "ok" if numpy.array_equal(target[:length], guess[:length]) else "WRONG"
            elif t.kind == "sequence":
                mark = "ok" if int(target) == int(guess) else "WRONG"
            else:
                mark = f"error {float(numpy.abs(numpy.ravel(guess) - numpy.ravel(target)).max()):.3f}"
            print(f"  {t.name:<10} predicted {_shown(guess, t.kind, length):<24} "
                  f"target {_shown(target, t.kind, length):<24} {mark}")
        print()
    return 0


TRAIN = Command("train", "train a multi-task model and print per-task metrics", add_train_arguments, run_train)
EVAL = Command("eval", "per-task metrics of a trained run", add_eval_arguments, run_eval)
DEMO = Command("demo", "show inputs with each task's prediction and target", add_demo_arguments, run_demo)
