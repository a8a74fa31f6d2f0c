"""``tinymtt figures [--out DIR] [--quick]``: the figures of the README and the lessons, trained and drawn.

    attention_sort.png               each head's attention weights on one sort example (conditioned model)
    task_affinity.png                the T×T task-affinity map of task attention (joint model)
    curves_conditioned_vs_joint.png  per-task training loss, conditioned vs joint (same tasks, seed, steps)
    gradcheck_errors.png             worst relative error of every gradient check (tinymtt.gradcheck.suite)
    positional_encoding.png          the sinusoidal table P and a few of its columns

Two small models (d_model 32, 2 heads, 2 layers) are trained on the sequence
suite (sort, reverse, max, mean), one per mode, with the same seed and steps;
figures 1-3 come from them. Quick mode (``--quick`` or TINYMTT_QUICK=1) trains
for a few dozen steps: the same pictures, drawn from barely trained models.
The drawing is tinymtt.plots.figures.

Everything is seeded and drawn with matplotlib's default style and no PNG
metadata, so the same seed gives byte-identical files on one installation
(a different BLAS thread count rounds float32 sums differently: after 1500
steps the numbers move in the second decimal, the pictures stay the same).
matplotlib is needed: ``pip install 'tinymtt[lessons]'``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ..config import ModelConfig
from ..data import make_sequence_suite
from ..exercises import quick as quick_from_environment
from ..gradcheck.suite import run_checks
from ..metrics import evaluate
from ..model import MultiTaskTransformer
from ..plots.canvas import figure_class, reproducible_style
from ..plots.figures import (plot_attention_sort, plot_curves, plot_gradcheck, plot_positional_encoding,
                             plot_task_affinity)
from ..train import TrainConfig, Trainer, read_history
from .common import Command, UsageError, writable_folder

# examples generated, training steps and history log interval per mode
SETTINGS = {"full": dict(examples=8000, steps=1500, log_every=10), "quick": dict(examples=800, steps=24, log_every=2)}
MODEL = dict(d_model=32, num_heads=2, num_layers=2, d_ff=128)


# --- the two trained models ---------------------------------------------------------

class _Run:
    """A trained model, its validation set, its training history and its final validation metrics."""

    def __init__(self, mode, train_set, val_set, settings, seed, out_dir):
        config = ModelConfig(**train_set.model_config_kwargs(), **MODEL, mode=mode, seed=seed)
        self.model = MultiTaskTransformer(config)
        steps = settings["steps"]
        train_config = TrainConfig(steps=steps, batch_size=64, warmup_steps=steps // 10, seed=seed,
                                   log_every=settings["log_every"], eval_every=steps, checkpoint_every=steps)
        Trainer(self.model, train_set, None, train_config, out_dir=out_dir, progress=False).fit()
        self.mode, self.val_set, self.steps = mode, val_set, steps
        self.history = [r for r in read_history(Path(out_dir) / "history.jsonl") if "losses" in r]
        self.metrics = evaluate(self.model, val_set)


# --- all of them -----------------------------------------------------------------------------

def make_figures(out_dir, quick=None, seed=0, log=None) -> list:
    """Draw the five figures into ``out_dir``; returns their paths.

    quick: None = TINYMTT_QUICK (tinymtt.exercises.quick()); True trains for a few dozen steps.
    seed: the data, the models, the training and the gradient checks. ``log``: a print-like callable.
    """
    figure_class()                     # no matplotlib: one clear error now, before anything is trained
    quick = quick_from_environment() if quick is None else bool(quick)
    settings = SETTINGS["quick" if quick else "full"]
    log = log or (lambda *args: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = make_sequence_suite(settings["examples"], seed=seed)
    train_set, val_set = data.split((0.9, 0.1), seed=seed)
    paths = []
    with reproducible_style() as Figure, tempfile.TemporaryDirectory(prefix="tinymtt-figures-") as scratch:
        runs = []
        for mode in ("conditioned", "joint"):
            start = time.perf_counter()
            runs.append(_Run(mode, train_set, val_set, settings, seed, Path(scratch) / mode))
            log(f"trained the {mode} model ({settings['steps']} steps, {time.perf_counter() - start:.1f} s)")
        drawings = [("attention_sort.png", lambda p: plot_attention_sort(runs[0], p, Figure)),
                    ("task_affinity.png", lambda p: plot_task_affinity(runs[1], p, Figure)),
                    ("curves_conditioned_vs_joint.png", lambda p: plot_curves(runs, p, Figure)),
                    ("gradcheck_errors.png", lambda p: plot_gradcheck(run_checks(seed=seed), p, Figure)),
                    ("positional_encoding.png", lambda p: plot_positional_encoding(p, Figure))]
        for name, draw in drawings:
            start = time.perf_counter()
            paths.append(draw(out_dir / name))
            log(f"wrote {paths[-1]} ({time.perf_counter() - start:.1f} s)")
    return paths


# --- the command ---------------------------------------------------------------------------

def add_arguments(parser):
    parser.add_argument("--out", default="figures", help="folder to write the PNGs to (default figures/)")
    parser.add_argument("--quick", action="store_true", help="a few seconds of training (also: TINYMTT_QUICK=1)")
    parser.add_argument("--seed", type=int, default=0, help="seed for data, models and checks (default 0)")


def run(args) -> int:
    """0 on success; a bad option or no matplotlib: one line, exit code 2."""
    if args.seed < 0:
        raise UsageError(f"tinymtt figures: --seed must be >= 0, got {args.seed}")
    writable_folder(args.out, "--out")
    start = time.perf_counter()
    paths = make_figures(args.out, quick=True if args.quick else None, seed=args.seed, log=print)
    print(f"{len(paths)} figures in {Path(args.out)} ({time.perf_counter() - start:.0f} s)")
    return 0


COMMAND = Command("figures", "regenerate the figures", add_arguments, run,
                  description="Draw the README and lesson figures (needs matplotlib).")
