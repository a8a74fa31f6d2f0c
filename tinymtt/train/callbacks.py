"""Watching training without touching it: the trainer's hook, and the callbacks tinymtt ships.

The trainer calls each callback twice per step (tinymtt.train.Trainer.train_step):

    loss, backward (or the strategy's combined gradient)
    callback.after_backward(trainer, step)    the step's gradients are in the model, parameters not yet moved
    clipping, optimizer step, strategy update
    callback.after_step(trainer, step)        the parameters have moved; trainer.step counts this step

``step`` (a ``Step``) says what this step did: its batch, the model's
``LossResult``, the per-task losses and weights, and -- after the optimizer
step -- the loss, the gradient norm and the seconds it took (the callbacks'
own time left out). A callback reads the trainer and the model; to change
the run is not its business. What it puts in ``step.record`` goes into the
step's line of ``history.jsonl`` (logged steps only: ``step.logging``).

    LogConflict     task-gradient cosines and norms at every logged step (``--log-conflict``)
    LogAffinity     the lookahead affinity Z_{i→j} at every logged step (``--log-affinity``)
    ConflictProbe   the same on a fixed probe batch every ``every`` steps, into a ConflictLog
    StepTimer       the training steps' own seconds, summed
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..mtl import ConflictLog, conflict_record
from ..mtl.affinity import jsonable_affinity, lookahead_affinity


@dataclass
class Step:
    """One training step, as the callbacks see it."""
    number: int              # 1, 2, ...: this step (trainer.step once it is done)
    batch: dict
    result: object           # the model's LossResult: total, losses, counted
    losses: dict             # {task: float} L_τ (0.0 for a task not counted: see result.counted)
    weights: object          # (T,) host float64: the strategy's task weights this step
    logging: bool            # this step is written to the history
    record: dict = field(default_factory=dict)   # extra entries for this step's history line
    loss: float | None = None         # Σ w_τ L_τ           } set once the
    grad_norm: float | None = None    # before clipping     } optimizer has
    seconds: float | None = None      # without callbacks   } stepped


class Callback:
    """Does nothing; a callback overrides what it needs."""

    def after_backward(self, trainer, step: Step):
        """The gradients of this step are in the model; the parameters have not moved yet."""

    def after_step(self, trainer, step: Step):
        """The optimizer has stepped and ``trainer.step == step.number``."""


class LogConflict(Callback):
    """At every logged step: the cosines and norms of the task gradients, into the history (``conflict``).

    Measured after the step's backward pass, on its batch (tinymtt.mtl.conflict_record:
    T extra backward passes, the model's gradients restored), so training is bit-identical with or without it.
    """

    def after_backward(self, trainer, step):
        if step.logging:
            step.record["conflict"] = conflict_record(trainer.model, step.result.counted)


class LogAffinity(Callback):
    """At every logged step: the lookahead affinity Z (T, T) on its batch, into the history (``affinity``).

    Z_{i→j} = 1 − L_j(θ_s^{t+1|i}) / L_j(θ^t) (tinymtt.mtl.affinity): the
    optimizer's own update on task i's gradient alone (``optimizer.lookahead``,
    at this step's learning rate, before clipping), then each task's loss.
    T backward and T + 1 forward passes; the parameters, gradients, caches and
    optimizer are left as they were, so training is bit-identical with or without it.
    """

    def after_backward(self, trainer, step):
        if step.logging:
            lr = trainer.schedule(step.number)     # the trainer sets it after the callbacks

            def update(grads):
                return trainer.optimizer.lookahead(grads, lr=lr)

            affinity = lookahead_affinity(trainer.model, step.batch, update, step.result.counted,
                                          trainer.shared_names)
            step.record["affinity"] = jsonable_affinity(affinity)


class ConflictProbe(Callback):
    """Every ``every`` steps (and at the last): the conflict on a fixed ``batch``, added to ``self.log``.

    After the optimizer step it runs a forward pass on the probe batch and T
    backward passes (tinymtt.mtl.conflict_record), in the model's current mode:
    with dropout on, that forward draws dropout masks of its own.
    """

    def __init__(self, batch, every, task_names):
        self.batch, self.every = batch, every
        self.log = ConflictLog(task_names)

    def after_step(self, trainer, step):
        if step.number % self.every == 0 or step.number == trainer.config.steps:
            result = trainer.model.loss(self.batch)                  # the conflict at the current parameters
            self.log.add_record(step.number, conflict_record(trainer.model, result.counted))


class StepTimer(Callback):
    """``seconds``: the training steps' own wall time, summed (no evaluation, logging or callbacks)."""

    def __init__(self):
        self.seconds, self.steps = 0.0, 0

    def after_step(self, trainer, step):
        self.seconds += step.seconds
        self.steps += 1
