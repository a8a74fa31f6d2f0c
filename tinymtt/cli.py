"""The `tinymtt` command (thin: parses arguments, calls the library).

    tinymtt train [options]        train a multi-task model (defaults: the sequence suite)
    tinymtt eval RUN               per-task metrics of a trained run
    tinymtt demo RUN               a few inputs with each task's prediction and target
    tinymtt gradcheck              check every op, layer and the whole model
    tinymtt bench                  one training step, timed beside PyTorch
    tinymtt doctor                 what is installed, what is missing, how to install it
    tinymtt compare                every balancing strategy on the same tasks and seeds
    tinymtt figures                regenerate the figures (seeded)
    tinymtt exercises OUT_DIR      student copies of the lessons (solutions replaced by stubs)

Bad options, bad values and missing files: one clear line, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXIT_USAGE = 2


class UsageError(Exception):
    """A bad option or value: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def _weights(text):
    """'sort=1,max=0.5' -> {'sort': 1.0, 'max': 0.5}."""
    weights = {}
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected task=weight pairs like sort=1,max=0.5, got {text!r}") from None
    return weights


def _option(text):
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


def _parser():
    from .mtl import STRATEGIES

    parser = _Parser(prog="tinymtt", description="A small multi-task Transformer with hand-written gradients.")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    commands.required = True

    train = commands.add_parser("train", help="train a multi-task model and print per-task metrics")
    train.add_argument("--data", choices=["sequences", "digits"], default="sequences", help="built-in data set")
    train.add_argument("--tasks", default=None, help="comma-separated subset of the data set's tasks")
    train.add_argument("--examples", type=_positive(int), default=20000, help="generated examples (sequences)")
    train.add_argument("--mode", choices=["conditioned", "joint"], default="conditioned")
    train.add_argument("--d-model", type=_positive(int), default=64)
    train.add_argument("--heads", type=_positive(int), default=4)
    train.add_argument("--layers", type=_positive(int), default=2)
    train.add_argument("--d-ff", type=_positive(int), default=None, help="default 4 × d-model")
    train.add_argument("--dropout", type=float, default=0.0)
    train.add_argument("--task-hidden", type=_positive(int), default=None, help="hidden ReLU layer in the task encoder")
    train.add_argument("--steps", type=_positive(int), default=2000)
    train.add_argument("--batch-size", type=_positive(int), default=64)
    train.add_argument("--lr", type=_positive(float), default=3e-3)
    train.add_argument("--weights", type=_weights, default=None,
                       help="task loss weights for --strategy fixed, e.g. sort=1,mean=2")
    train.add_argument("--strategy", choices=STRATEGIES, default="fixed",
                       help="how the task losses or gradients are combined (tinymtt.mtl); default: fixed")
    train.add_argument("--strategy-option", type=_option, action="append", default=None, metavar="KEY=VALUE",
                       help="an option of the strategy, e.g. alpha=1.5 (gradnorm), c=0.4 (cagrad), window=20 (dwa); "
                            "repeat for several")
    train.add_argument("--sampling", choices=["uniform", "proportional", "temperature"], default="uniform")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--backend", choices=["numpy", "cupy"], default=None, help="default: $TINYMTT_BACKEND or numpy")
    train.add_argument("--out", default=None, help="run folder (default runs/DATA-MODE-seedSEED, "
                                                    "runs/DATA-MODE-STRATEGY-seedSEED for a strategy other than fixed)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    train.add_argument("--log-conflict", action="store_true",
                       help="log task-gradient cosines at each logged step and plot conflict.png (T extra backward passes)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

    evaluate = commands.add_parser("eval", help="per-task metrics of a trained run")
    evaluate.add_argument("run", help="run folder written by tinymtt train")
    evaluate.add_argument("--split", choices=["train", "val", "test"], default="test")
    evaluate.add_argument("--json", action="store_true", help="print {task: {metric: value}} as JSON")

    demo = commands.add_parser("demo", help="show inputs with each task's prediction and target")
    demo.add_argument("run", help="run folder written by tinymtt train")
    demo.add_argument("--examples", type=_positive(int), default=5)

    gradcheck = commands.add_parser("gradcheck", help="check every op, layer and the whole model by finite differences")
    gradcheck.add_argument("--only", default=None, help="only checks whose name contains this")

    commands.add_parser("bench", help="time one training step beside PyTorch (see tinymtt bench --help)",
                        add_help=False)
    commands.add_parser("doctor", help="what is installed and what is missing")
    commands.add_parser("compare", help="every balancing strategy on the same tasks and seeds "
                        "(see tinymtt compare --help)", add_help=False)
    commands.add_parser("figures", help="regenerate the figures (see tinymtt figures --help)", add_help=False)
    exercises = commands.add_parser("exercises", help="write student copies of the lessons")
    exercises.add_argument("out_dir", help="folder for the student notebooks")
    exercises.add_argument("--lessons", default=None, help="folder of the lesson notebooks (default: lessons/)")
    return parser


def _table(metrics: dict, tasks) -> str:
    kinds = {t.name: t.kind for t in tasks}
    rows = [("task", "kind", "metric", "value")]
    for task, values in metrics.items():
        for metric, value in values.items():
            rows.append((task, kinds.get(task, ""), metric, f"{value:.4f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_train(args) -> int:
    from . import backend
    from .config import ModelConfig
    from .model import MultiTaskTransformer
    from .metrics import evaluate
    from .plots import plot_history
    from .runs import data_splits, read_config, write_config
    from .train import TrainConfig, Trainer

    if args.backend:
        backend.use(args.backend)
    strategy = "" if args.strategy == "fixed" else f"-{args.strategy}"
    out = Path(args.out or f"runs/{args.data}-{args.mode}{strategy}-seed{args.seed}")
    if args.resume:
        if args.out is None:
            raise UsageError("tinymtt train: --resume needs --out RUN (the run folder to continue)")
        document = read_config(out)
        model_config, train_config, data_args = document["model"], document["train"], document["data"]
    else:
        if (out / "trainer.npz").exists():
            raise UsageError(f"tinymtt train: {out} already holds a run: continue it with --resume, "
                             f"or choose another folder with --out")
        data_args = {"name": args.data, "seed": args.seed, "tasks": args.tasks.split(",") if args.tasks else None}
        if args.data == "sequences":
            data_args["num_examples"] = args.examples
    train_set, val_set, test_set = data_splits(data_args)
    if not args.resume:
        model_config = ModelConfig(**train_set.model_config_kwargs(), d_model=args.d_model, num_heads=args.heads,
                                   num_layers=args.layers, d_ff=args.d_ff or 4 * args.d_model, dropout=args.dropout,
                                   mode=args.mode, task_hidden=args.task_hidden, seed=args.seed)
        train_config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, weights=args.weights,
                                   strategy=args.strategy, strategy_options=dict(args.strategy_option or []) or None,
                                   sampling=args.sampling, seed=args.seed, warmup_steps=min(100, args.steps // 10),
                                   eval_every=max(args.steps // 4, 1), checkpoint_every=max(args.steps // 4, 1),
                                   log_conflict=args.log_conflict)
    model = MultiTaskTransformer(model_config)
    trainer = Trainer(model, train_set, val_set, train_config, out_dir=out, progress=not args.no_progress)
    if not args.resume:
        write_config(out, model_config, train_config, data_args, backend.get_backend())
    else:
        trainer.resume()
        print(f"resuming {out} at step {trainer.step} of {train_config.steps}")
    print(f"training {model.num_parameters():,} parameters on {train_set.name} ({len(train_set):,} examples, "
          f"tasks {', '.join(model_config.task_names)}), {model_config.mode} mode, {train_config.strategy} strategy, "
          f"{backend.get_backend()} backend")
    trainer.fit()
    metrics = evaluate(model, test_set)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot = plot_history(out / "history.jsonl", out / "curves.png", title=f"{train_set.name}, {model_config.mode} mode")
    if train_config.log_conflict and plot:
        from .mtl import plot_conflict
        plot_conflict(out / "history.jsonl", out / "conflict.png", title=f"{train_set.name}, {model_config.mode} mode")
    print(f"\ntest metrics after {trainer.step} steps ({trainer.elapsed:.0f} s):")
    print(_table(metrics, model_config.tasks))
    print(f"\nrun folder: {out}" + ("" if plot else "  (install matplotlib for curves.png)"))
    return 0


def cmd_eval(args) -> int:
    from .metrics import evaluate
    from .runs import data_splits, load_run

    model, document = load_run(args.run)
    split = dict(zip(("train", "val", "test"), data_splits(document["data"])))[args.split]
    metrics = evaluate(model, split)
    print(json.dumps(metrics, indent=2) if args.json else _table(metrics, model.config.tasks))
    return 0


def cmd_demo(args) -> int:
    import numpy

    from .metrics import predict
    from .runs import data_splits, load_run

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
                target_text = " ".join(str(int(v)) for v in target[:length])
                guess_text = " ".join(str(int(v)) for v in guess[:length])
                mark = "ok" if numpy.array_equal(target[:length], guess[:length]) else "WRONG"
            elif t.kind == "sequence":
                target_text, guess_text = str(int(target)), str(int(guess))
                mark = "ok" if int(target) == int(guess) else "WRONG"
            else:
                target_text = " ".join(f"{float(v):.3f}" for v in numpy.ravel(target))
                guess_text = " ".join(f"{float(v):.3f}" for v in numpy.ravel(guess))
                mark = f"error {float(numpy.abs(numpy.ravel(guess) - numpy.ravel(target)).max()):.3f}"
            print(f"  {t.name:<10} predicted {guess_text:<24} target {target_text:<24} {mark}")
        print()
    return 0


def cmd_gradcheck(args) -> int:
    from .selfcheck import format_table, run_checks

    rows = run_checks(only=args.only)
    if not rows:
        raise UsageError(f"tinymtt gradcheck: no check matches --only {args.only!r}")
    print(format_table(rows))
    return 0 if all(r.passed for r in rows) else 1


def cmd_exercises(args) -> int:
    from .exercises import write_exercises

    written = write_exercises(args.out_dir, args.lessons)
    for name, regions in written.items():
        print(f"{name}: {regions} exercise(s) stubbed")
    print(f"student copies in {args.out_dir}: hand them out; each check cell says what is wrong until it is right")
    return 0


def cmd_doctor(args) -> int:
    from .doctor import diagnose, doctor_exit_code, format_report

    rows = diagnose()
    print(format_report(rows))
    return doctor_exit_code(rows)


def _self_parsing(command, argv) -> int:
    if command == "bench":
        from .bench import main as run
    elif command == "compare":
        from .compare import main_compare as run
    else:
        from .figures import main_figures as run
    try:
        return run(argv)
    except UsageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE


def _one_blas_thread():
    """One BLAS thread unless the user chose otherwise.

    tinymtt's matrices are small (64-256 wide): a second BLAS thread gains
    little, and on a busy machine OpenBLAS's spinning threads make a training
    step many times slower (measured here: 300 steps took 64 s with 2 threads
    on a 2-core machine with a busy neighbour, 4.8 s with 1). This only works
    before NumPy is imported, so it is done first thing; an
    OPENBLAS_NUM_THREADS / OMP_NUM_THREADS already set is respected.
    """
    if "numpy" not in sys.modules:
        for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(variable, "1")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["bench"]:           # the benchmark keeps both peers at their default threads
        _one_blas_thread()
    if argv[:1] in (["bench"], ["compare"], ["figures"]):     # these parse their own options
        return _self_parsing(argv[0], argv[1:])
    from .backend import BackendError
    from .checkpoint import CheckpointError
    from .train import TrainingError
    try:
        args = _parser().parse_args(argv)
        handler = {"train": cmd_train, "eval": cmd_eval, "demo": cmd_demo, "gradcheck": cmd_gradcheck,
                   "doctor": cmd_doctor, "exercises": cmd_exercises}[args.command]
        return handler(args)
    except UsageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    except TrainingError as error:
        print(f"tinymtt: training stopped: {error}", file=sys.stderr)
        return 1
    except (FileNotFoundError, CheckpointError, BackendError, ValueError, KeyError, TypeError, ImportError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"tinymtt: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
