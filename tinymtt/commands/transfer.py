"""tinymtt transfer: the label-budget sweep, single-task against multi-task as the main task's labels grow.

    tinymtt transfer --data words|digits [--budgets 100 300 all] [--seeds 0 1 2] [--mode conditioned|joint]
                     [--steps N] [--quick] [--json] [--out FILE.json] [--figure FILE.png] [--force]

The sweep itself (what is trained, on what, and why the budgets are fair) is
tinymtt.train.transfer; this module parses, checks and prints. Every check
runs before the first training step: a bad value is one line naming the
option, what was expected and what was given, and exit code 2. ``--out`` and
``--figure`` never replace an existing file unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import backend
from ..train.transfer import PRESETS, TransferConfig, load_splits, sweep
from .common import Command, UsageError, limit_blas_threads, text_table, writable_file

# per data set: the full sweep's budgets and steps (each about 15 minutes or less on 2 cores; README)
FULL = {"words": {"budgets": [100, 300, 1000, 3000, "all"], "steps": 1500},
        "digits": {"budgets": [50, 150, 500, "all"], "steps": 1500}}
QUICK = {"budgets": [100, 1000], "seeds": [0, 1], "steps": 150, "d_model": 32, "d_ff": 64, "num_heads": 2,
         "num_layers": 1, "num_examples": 4000}


def steps_value(text):
    """An argparse type: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def budget_value(text):
    """An argparse type: a positive integer, or 'all' (every training example)."""
    if text == "all":
        return text
    try:
        return steps_value(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}") from None


def seed_value(text):
    """An argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def add_arguments(parser):
    parser.add_argument("--data", choices=sorted(PRESETS), default="words",
                        help="words (main: stress; auxiliaries: syllables, hyphen) or digits (main: digit; "
                             "auxiliaries: transform, row); default words")
    parser.add_argument("--budgets", type=budget_value, nargs="+", default=None, metavar="N",
                        help="main-task label budgets, positive integers or 'all' (default words: 100 300 1000 "
                             "3000 all; digits: 50 150 500 all; --quick: 100 1000)")
    parser.add_argument("--seeds", type=seed_value, nargs="+", default=None, metavar="S",
                        help="distinct seeds (default 0 1 2; --quick: 0 1)")
    parser.add_argument("--mode", choices=["conditioned", "joint"], default="conditioned",
                        help="the multi-task model's mode (default conditioned; joint costs about T times more)")
    parser.add_argument("--steps", type=steps_value, default=None,
                        help="training steps per run (default 1500; --quick 150)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test of a few seconds a run: 2 seeds, budgets 100 and 1000, 150 steps, "
                             "a tiny model, 4,000 words")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (its rows: budget, single_mean, single_std, multi_mean, "
                             "multi_std, ...) instead of the table")
    parser.add_argument("--out", default=None, help="also write the JSON results to this file")
    parser.add_argument("--figure", default=None, help="draw the curves to this PNG (needs matplotlib)")
    parser.add_argument("--force", action="store_true", help="replace the files of --out and --figure if they exist")
    parser.add_argument("--backend", choices=["numpy", "cupy"], default=None)
    parser.add_argument("--threads", type=seed_value, default=1, help="BLAS threads (default 1)")
    return parser


def _output(path, option, force) -> Path | None:
    if path is None:
        return None
    path = writable_file(path, option)
    if path.exists() and not force:
        raise UsageError(f"tinymtt transfer: {option} {path}: the file exists (choose another name, or --force "
                         f"to replace it)")
    return path


def make_config(args) -> TransferConfig:
    """The sweep's configuration from the options (budgets still as given: 'all' is resolved by ``resolve``)."""
    full = FULL[args.data]
    config = TransferConfig(data=args.data, budgets=args.budgets or full["budgets"], mode=args.mode,
                            steps=args.steps or full["steps"], seeds=args.seeds or [0, 1, 2])
    if args.quick:
        config.budgets = args.budgets or QUICK["budgets"]
        config.seeds = args.seeds or QUICK["seeds"]
        config.steps = args.steps or QUICK["steps"]
        for key in ("d_model", "d_ff", "num_heads", "num_layers", "num_examples"):
            setattr(config, key, QUICK[key])
    if len(set(config.seeds)) != len(config.seeds):
        raise UsageError(f"tinymtt transfer: --seeds expected distinct seeds, got {' '.join(map(str, config.seeds))}")
    return config


def resolve(config: TransferConfig) -> int:
    """Check the budgets against the training examples there are ('all' becomes that number); returns it."""
    available = len(load_splits(config, config.seeds[0])[0])      # every seed's split has the same size
    budgets = [available if b == "all" else b for b in config.budgets]
    for budget in budgets:
        if budget > available:
            raise UsageError(f"tinymtt transfer: --budgets expected at most {available} (the {config.data} "
                             f"training examples{' of --quick' if config.num_examples == QUICK['num_examples'] and config.data == 'words' else ''}), got {budget}")
    if len(set(budgets)) != len(budgets):
        raise UsageError(f"tinymtt transfer: --budgets expected distinct budgets, got {' '.join(map(str, budgets))}")
    config.budgets = sorted(budgets)
    return available


def format_table(results: dict) -> str:
    c = results["config"]
    spread = len(c["seeds"]) > 1             # one seed has no spread to show

    def cell(mean, std, sign=""):
        return f"{mean:{sign}.3f} ± {std:.3f}" if spread else f"{mean:{sign}.3f}"

    header = ["budget", "single-task", "multi-task", "multi − single", "multi wins (seeds)"]
    rows = [[f"{row['budget']:,}", cell(row["single_mean"], row["single_std"]),
             cell(row["multi_mean"], row["multi_std"]), cell(row["difference_mean"], row["difference_std"], "+"),
             f"{sum(m > s for m, s in zip(row['multi'], row['single']))}/{len(row['multi'])}"]
            for row in results["rows"]]
    title = (f"{c['data']}: {results['main']} test accuracy, {results['main']} + "
             f"{', '.join(results['auxiliaries'])} ({c['mode']} mode); seeds {' '.join(map(str, c['seeds']))}, "
             f"{c['steps']} steps, d_model {c['d_model']}, {c['num_layers']} layer(s); "
             f"{results['train_examples']:,} training and {results['test_examples']:,} test examples; "
             f"{results['seconds']:.0f} s")
    notes = (f"mean ± std over the seeds; multi − single: the paired difference, seed by seed. Majority class: "
             f"{cell(results['majority']['mean'], results['majority']['std'])}.")
    return "\n".join([title, "", text_table(header, rows), "", notes])


def run(args) -> int:
    """0 on success; a bad option or value is a UsageError (exit 2)."""
    config = make_config(args)
    out = _output(args.out, "--out", args.force)
    figure = _output(args.figure, "--figure", args.force)
    if figure is not None:
        from ..plots.canvas import figure_class
        figure_class()                      # matplotlib missing: said now, not after the training
    if args.backend:
        backend.use(args.backend)
    resolve(config)
    with limit_blas_threads(args.threads):
        results = sweep(config, log=lambda line: print(line, file=sys.stderr, flush=True))
    text = json.dumps(results, indent=2, allow_nan=False)
    if out is not None:
        out.write_text(text + "\n")
    if figure is not None:
        from ..plots.transfer import plot_transfer
        plot_transfer(results, figure)
    print(text if args.json else format_table(results))
    return 0


COMMAND = Command("transfer", "the label-budget sweep: single-task vs multi-task as the main labels grow",
                  add_arguments, run,
                  description="Train single-task and multi-task models with the main task's labels limited to each "
                              "budget (the auxiliary tasks keep all theirs) and print the main task's test accuracy, "
                              "mean ± std over seeds.")
