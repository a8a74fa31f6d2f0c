"""The training loop: forward, weighted loss, backward, clipping, AdamW, schedule.

One step, written out:

    batch           = next batch (task sampling in conditioned mode)
    result          = model.loss(batch)                  one loss per task, and which tasks counted
    w               = strategy.task_weights({L_τ})       (T,), 0 for a task with no target in the batch
    loss methods:   model.backward(dlosses=w)            every ∂L/∂θ of L = Σ_τ w_τ L_τ
    gradient methods (PCGrad, MGDA, CAGrad, GradNorm, DB-MTL, IMTL, Nash-MTL, Aligned-MTL, GradVac):
                    G = task_gradients(model)            (T, P): one backward pass per task
                    shared gradient ← strategy.combine(G)
    callbacks       after_backward(trainer, step)        (tinymtt.train.callbacks)
    clip            g ← g · min(1, max_norm / ‖g‖)
    lr              = warmup + cosine schedule(step)
    AdamW           θ ← θ − lr·(m̂/(√v̂ + ε) + λθ)
    FAMO only:      strategy.losses_after_step(model.loss(batch))   the same batch, the moved parameters
    strategy.after_step({L_τ})                           uncertainty, DWA, GradNorm, ... update their state
    callbacks       after_step(trainer, step)

A run folder (``out_dir``) holds everything a person or a resume needs:
``history.jsonl`` (one JSON object per logged step or evaluation, flushed as
it goes, so a stopped run loses nothing that was logged), ``model.npz`` and
``trainer.npz`` (checkpoint: parameters; optimizer state, data order, dropout
counters, the strategy's state -- enough to resume *exactly*), and ``metrics.json`` at the end.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .. import backend, checkpoint
from ..data import BatchIterator, MultiTaskDataset
from ..metrics import evaluate
from ..mtl import STRATEGIES, make_strategy, parameter_slices, set_gradients, shared_parameter_names, task_gradients
from ..optim import AdamW, WarmupCosine, clip_grad_norm
from ..validation import check_integer, check_number, check_positive_integer
from .callbacks import LogAffinity, LogConflict, Step
from .history import append_record, truncate_history
from .progress import progress_bar


STRATEGY_PREFIX = "strategy."       # the strategy's arrays in trainer.npz (the optimizer's are m.*, v.*)


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN/inf loss or gradient), with the step and task."""


@dataclass
class TrainConfig:
    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    weights: dict | None = None          # {task: w} for the fixed strategy; None = every weight 1
    strategy: str = "fixed"              # one of tinymtt.mtl.STRATEGIES
    strategy_options: dict | None = None  # the strategy's options, e.g. {"alpha": 1.5} for gradnorm
    sampling: str = "uniform"            # conditioned mode: uniform | proportional | temperature
    temperature: float = 2.0
    log_every: int = 25
    eval_every: int = 500
    checkpoint_every: int = 500
    seed: int = 0
    log_conflict: bool = False           # every log_every steps: task-gradient cosines and norms (T extra backward passes)
    log_affinity: bool = False           # every log_every steps: lookahead affinity (T backward, T + 1 forward passes)

    def __post_init__(self):
        # numbers are stored as Python ints and floats: a NumPy scalar would not go to JSON
        for name in ("steps", "batch_size", "log_every", "eval_every", "checkpoint_every"):
            setattr(self, name, check_positive_integer(getattr(self, name), name))
        for name in ("warmup_steps", "seed"):
            setattr(self, name, check_integer(getattr(self, name), name))
        for name in ("lr", "min_lr", "weight_decay", "clip_norm", "temperature"):
            setattr(self, name, check_number(getattr(self, name), name))
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.strategy_options is not None and not isinstance(self.strategy_options, dict):
            raise ValueError(f"strategy_options must be a dict {{option: value}} or None, "
                             f"got {self.strategy_options!r}")
        if self.weights and self.strategy != "fixed":
            raise ValueError(f"weights are the fixed strategy's; strategy {self.strategy!r} sets the task weights "
                             f"itself (drop the weights, or use strategy 'fixed')")

    def to_dict(self):
        return dataclasses.asdict(self)


def _dropout_counters(model) -> dict:
    """Each dropout user's call count (the masks are drawn from (seed, count))."""
    return {name or "model": module.calls for name, module in model.named_modules() if hasattr(module, "calls")}


def _set_dropout_counters(model, counters):
    for name, module in model.named_modules():
        if hasattr(module, "calls"):
            module.calls = int(counters[name or "model"])


class Trainer:
    """Trains ``model`` on ``train_set``; evaluates on ``val_set``; writes to ``out_dir``.

    callbacks: objects with ``after_backward(trainer, step)`` and
    ``after_step(trainer, step)`` (tinymtt.train.callbacks), called in order
    at every step; ``config.log_conflict`` puts a LogConflict first and
    ``config.log_affinity`` a LogAffinity after it.
    """

    def __init__(self, model, train_set: MultiTaskDataset, val_set: MultiTaskDataset | None = None,
                 config: TrainConfig | None = None, out_dir=None, progress=True, log=print, callbacks=()):
        self.model, self.train_set, self.val_set = model, train_set, val_set
        self.config = c = config or TrainConfig()
        unknown = sorted(set(c.weights or {}) - set(model.config.task_names))
        if unknown:
            raise ValueError(f"weights name unknown tasks {unknown}; the tasks are {model.config.task_names}")
        if train_set.task_names != model.config.task_names:
            raise ValueError(f"the data set's tasks {train_set.task_names} differ from the model's "
                             f"{model.config.task_names}")
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress, self.log = progress, log
        self.optimizer = AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        self.schedule = WarmupCosine(c.lr, c.warmup_steps, c.steps, min_lr=c.min_lr)
        self.batches = BatchIterator(train_set, c.batch_size, model.config.mode, seed=c.seed,
                                     sampling=c.sampling, temperature=c.temperature, drop_last=len(train_set) >= c.batch_size)
        options = dict(c.strategy_options or {})
        if c.strategy == "fixed":
            options["weights"] = backend.to_numpy(model.task_weights(c.weights, backend.get_array_module()))
        self.strategy = make_strategy(c.strategy, model.config.num_tasks,
                                      kinds=[t.kind for t in model.config.tasks], **options)
        self.shared_names = shared_parameter_names(model)
        self.strategy.attach(parameter_slices(model, self.shared_names))
        self.callbacks = (([LogConflict()] if c.log_conflict else []) + ([LogAffinity()] if c.log_affinity else [])
                          + list(callbacks))
        self.step = 0
        self.elapsed = 0.0
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)

    # -- history ---------------------------------------------------------------
    def _record(self, entry):
        if self.out_dir is not None:
            append_record(self.out_dir / "history.jsonl", entry)

    # -- one step ----------------------------------------------------------------
    def _next_batch(self):
        if not hasattr(self, "_stream"):
            self._stream = self._forever()
        return next(self._stream)

    def _forever(self):
        while True:
            yield from self.batches

    def _call(self, hook, step) -> float:
        """Run every callback's ``hook``; returns the seconds they took."""
        started = time.perf_counter()
        for callback in self.callbacks:
            getattr(callback, hook)(self, step)
        return time.perf_counter() - started

    def train_step(self, batch) -> Step:
        """One optimisation step; returns the ``Step`` the callbacks saw (losses, weights, norm as floats)."""
        model, strategy = self.model, self.strategy
        started = time.perf_counter()
        model.zero_grad()
        result = model.loss(batch)                         # the strategy's weights enter through backward
        values = {name: backend.to_float(loss) for name, loss in result.losses.items()}
        bad = [name for name, v in values.items() if not math.isfinite(v)]
        if bad:
            raise TrainingError(f"step {self.step + 1}: the loss of task {bad[0]!r} is {values[bad[0]]} (not "
                                f"finite); per-task losses {values}. Lower the learning rate (--lr) or check the data")
        weights = strategy.task_weights(values, result.counted)
        if strategy.needs_task_gradients:
            task_grads = task_gradients(model, self.shared_names, result.counted, scales=weights)
            set_gradients(model, strategy.combine(task_grads, values, result.counted), shared_names=self.shared_names)
        else:
            model.backward(dlosses=weights)
        number = self.step + 1
        step = Step(number, batch, result, values, weights,
                    logging=number % self.config.log_every == 0 or number == self.config.steps)
        hooks = self._call("after_backward", step)
        norm = clip_grad_norm(model.gradients(), self.config.clip_norm) if self.config.clip_norm > 0 else None
        if norm is not None and not math.isfinite(norm):
            raise TrainingError(f"step {number}: the gradient norm is {norm} (not finite) although every "
                                f"loss is finite {values}; lower the learning rate (--lr)")
        self.optimizer.lr = self.schedule(number)
        self.optimizer.step(model.gradients())
        if strategy.needs_losses_after_step:                # FAMO: how far the step moved each loss
            again = model.loss(batch)
            strategy.losses_after_step({name: backend.to_float(loss) for name, loss in again.losses.items()},
                                       again.counted)
        strategy.after_step(values, result.counted)
        self.step = number
        step.loss = sum(w * value for w, value in zip(weights.tolist(), values.values()))
        step.grad_norm, step.seconds = norm, time.perf_counter() - started - hooks
        self._call("after_step", step)
        return step

    # -- the loop ----------------------------------------------------------------
    def fit(self):
        """Train up to ``config.steps``; returns the final validation metrics (or {})."""
        c = self.config
        bar = progress_bar(c.steps, self.step) if self.progress else None
        started = time.perf_counter() - self.elapsed
        stop = _StopOnCtrlC()
        try:
            while self.step < c.steps:
                if stop.requested:
                    self._stopped(bar)
                step = self.train_step(self._next_batch())
                self.elapsed = time.perf_counter() - started
                # a task with no example in the batch has no loss this step: null, never a fake 0
                losses = {name: (value if step.result.counted[name] else None) for name, value in step.losses.items()}
                if step.logging:
                    weights = dict(zip(losses, self.strategy.last_weights.tolist()))
                    self._record({"step": self.step, "loss": step.loss, "losses": losses, "weights": weights,
                                  "lr": self.optimizer.lr, "grad_norm": step.grad_norm,
                                  "seconds": round(self.elapsed, 3), **step.record})
                if bar is not None:
                    bar.update(1)
                    if self.step % 5 == 0:
                        bar.set_postfix({name: f"{v:.3f}" for name, v in losses.items() if v is not None},
                                        refresh=False)
                if self.val_set is not None and (self.step % c.eval_every == 0 or self.step == c.steps):
                    self._record({"step": self.step, "validation": evaluate(self.model, self.val_set)})
                if self.out_dir is not None and (self.step % c.checkpoint_every == 0 or self.step == c.steps):
                    self.save()
            if stop.requested:
                self._stopped(bar)
        finally:
            stop.restore()
            if bar is not None:
                bar.close()
        return evaluate(self.model, self.val_set) if self.val_set is not None else {}

    def _stopped(self, bar):
        """Ctrl-C was pressed: checkpoint the last completed step, then stop with a KeyboardInterrupt."""
        if bar is not None:
            bar.close()
        if self.out_dir is None:
            raise KeyboardInterrupt(f"stopped after step {self.step} of {self.config.steps}")
        self.save()
        raise KeyboardInterrupt(f"stopped after step {self.step} of {self.config.steps}; checkpoint saved in "
                                f"{self.out_dir} (continue with: tinymtt train --resume --out {self.out_dir})")

    # -- checkpoints -------------------------------------------------------------
    def save(self):
        """model.npz (parameters) and trainer.npz (optimizer, data order, dropout counters, strategy)."""
        if self.out_dir is None:
            raise ValueError("this Trainer has no out_dir to save to")
        state = self.optimizer.state_dict()
        arrays = {k: v for k, v in state.items() if hasattr(v, "shape")}
        numbers = {k: v for k, v in state.items() if not hasattr(v, "shape")}
        strategy = self.strategy.state_dict()
        arrays.update({STRATEGY_PREFIX + k: v for k, v in strategy.items() if hasattr(v, "shape")})
        meta = {"step": self.step, "elapsed": self.elapsed, "optimizer": numbers,
                "strategy": {k: v for k, v in strategy.items() if not hasattr(v, "shape")},
                "batches": self.batches.state(), "dropout": _dropout_counters(self.model),
                "train_config": self.config.to_dict()}
        # each file is written atomically and both carry the step: resume() refuses a pair from two steps
        checkpoint.save_arrays(self.out_dir / "trainer.npz", arrays, meta)
        checkpoint.save(self.model, self.out_dir / "model.npz", extra={"step": self.step})

    def resume(self):
        """Continue from the checkpoint in ``out_dir``: bit-identical to a run never stopped."""
        if self.out_dir is None or not (self.out_dir / "trainer.npz").exists():
            raise FileNotFoundError(f"no checkpoint to resume from in {self.out_dir} (trainer.npz is missing)")
        arrays, meta = checkpoint.load_arrays(self.out_dir / "trainer.npz")
        model_step = checkpoint.load_into(self.model, self.out_dir / "model.npz").get("step")
        if model_step != meta["step"]:
            raise checkpoint.CheckpointError(
                f"{self.out_dir}: model.npz holds step {model_step} but trainer.npz step {meta['step']} (a save "
                f"was interrupted between the two files); the run cannot be resumed exactly")
        strategy = {k[len(STRATEGY_PREFIX):]: v for k, v in arrays.items() if k.startswith(STRATEGY_PREFIX)}
        self.optimizer.load_state_dict({**meta["optimizer"],
                                        **{k: v for k, v in arrays.items() if not k.startswith(STRATEGY_PREFIX)}})
        self.strategy.load_state_dict({**meta.get("strategy", {}), **strategy})
        self.batches.set_state(meta["batches"])
        _set_dropout_counters(self.model, meta["dropout"])
        self.step, self.elapsed = int(meta["step"]), float(meta["elapsed"])
        if hasattr(self, "_stream"):
            del self._stream
        dropped = truncate_history(self.out_dir / "history.jsonl", self.step)  # lines after the checkpoint come again
        if dropped:
            self.log(f"{self.out_dir / 'history.jsonl'}: dropped a torn last line (the run stopped while writing it)")
        return self


class _StopOnCtrlC:
    """While training: Ctrl-C (SIGINT) only asks the loop to stop, so it stops between two steps.

    A step cut in half would leave parameters, optimizer and data order out of step with each other.
    Installed only in the main thread (Python delivers signals there); ``restore`` puts the old handler back.
    """

    def __init__(self):
        self.requested = False
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.requested:                  # a second Ctrl-C: stop now, without the checkpoint
            raise KeyboardInterrupt("stopped at once (second Ctrl-C); the last checkpoint is the one on disk")
        self.requested = True

    def restore(self):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
