"""The trainer's hook: when callbacks run, what they see, that watching changes nothing, the callbacks shipped."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.config import ModelConfig
from tinymtt.data import make_batch, make_sequence_suite
from tinymtt.model import MultiTaskTransformer
from tinymtt.train import Callback, ConflictProbe, StepTimer, TrainConfig, Trainer, read_history


def trainer(steps=6, callbacks=(), out_dir=None, **train):
    data = make_sequence_suite(200, seed=0)
    model = MultiTaskTransformer(ModelConfig(**data.model_config_kwargs(), d_model=16, num_heads=2, d_ff=32,
                                             num_layers=1, dropout=0.1, seed=3))
    config = TrainConfig(steps=steps, batch_size=16, warmup_steps=1, log_every=2, **train)
    return Trainer(model, data, None, config, out_dir=out_dir, progress=False, callbacks=callbacks)


class Recorder(Callback):
    """Notes every call: (hook, step number, trainer.step, a parameter's first value)."""

    def __init__(self):
        self.calls = []

    def note(self, hook, trainer, step):
        first = float(backend.to_numpy(trainer.model.parameters()["embedding.weight"]).ravel()[0])
        self.calls.append((hook, step.number, trainer.step, first, step.loss, step.grad_norm, step.seconds))

    def after_backward(self, trainer, step):
        self.note("after_backward", trainer, step)

    def after_step(self, trainer, step):
        self.note("after_step", trainer, step)


def test_callbacks_run_after_backward_then_after_the_step():
    recorder = Recorder()
    trainer(steps=3, callbacks=[recorder]).fit()
    assert [(hook, number, done) for hook, number, done, *_ in recorder.calls] == [
        ("after_backward", 1, 0), ("after_step", 1, 1), ("after_backward", 2, 1), ("after_step", 2, 2),
        ("after_backward", 3, 2), ("after_step", 3, 3)]
    for (_, _, _, before, loss, norm, seconds), (_, _, _, after, *_) in zip(recorder.calls[::2], recorder.calls[1::2]):
        assert before != after                               # after_backward: the parameters had not moved yet
        assert loss is None and norm is None and seconds is None
    for _, _, _, _, loss, norm, seconds in recorder.calls[1::2]:
        assert np.isfinite(loss) and norm > 0 and seconds > 0


def test_watching_changes_nothing():
    plain, watched = trainer(), trainer(callbacks=[Recorder(), StepTimer()])
    plain.fit()
    watched.fit()
    a, b = plain.model.parameters(), watched.model.parameters()
    assert all(np.array_equal(backend.to_numpy(a[k]), backend.to_numpy(b[k])) for k in a)


def test_a_callbacks_record_goes_into_the_history_of_logged_steps(tmp_path):
    class Marks(Callback):
        def after_backward(self, trainer, step):
            if step.logging:
                step.record["mark"] = step.number * 10

    trainer(steps=5, callbacks=[Marks()], out_dir=tmp_path).fit()
    logged = [r for r in read_history(tmp_path / "history.jsonl") if "losses" in r]
    assert [(r["step"], r["mark"]) for r in logged] == [(2, 20), (4, 40), (5, 50)]


def test_the_step_says_which_tasks_counted():
    seen = []

    class Counted(Callback):
        def after_step(self, trainer, step):
            seen.append((step.result.counted, step.losses, step.weights.tolist()))

    trainer(steps=2, callbacks=[Counted()]).fit()
    for counted, losses, weights in seen:
        assert set(counted) == set(losses) == {"sort", "reverse", "max", "mean"}
        assert weights == [1.0 if counted[name] else 0.0 for name in losses]


def test_step_timer_sums_the_steps_own_seconds():
    timer = StepTimer()
    run = trainer(steps=4, callbacks=[timer])
    run.fit()
    assert timer.steps == 4 and 0 < timer.seconds <= run.elapsed


def test_conflict_probe_every_k_steps_and_at_the_last():
    data = make_sequence_suite(40, seed=1)
    batch = make_batch(data, np.arange(32), "conditioned", task_ids=np.arange(32) % 4)
    probe = ConflictProbe(batch, every=3, task_names=data.task_names)
    trainer(steps=7, callbacks=[probe]).fit()
    assert probe.log.steps == [3, 6, 7]
    cosine = probe.log.cosines[0]
    assert cosine.shape == (4, 4) and np.allclose(np.diag(cosine), 1.0)


def test_an_error_in_a_callback_is_not_swallowed():
    class Broken(Callback):
        def after_step(self, trainer, step):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        trainer(steps=2, callbacks=[Broken()]).fit()
