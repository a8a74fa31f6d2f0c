"""The trainer: exact resume, determinism, NaN reporting, history, metrics."""

import json

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.config import ModelConfig
from tinymtt.data import make_sequence_suite
from tinymtt.metrics import evaluate
from tinymtt.model import MultiTaskTransformer
from tinymtt.train import TrainConfig, Trainer, TrainingError, read_history

from helpers import host


def setup(mode="conditioned", dropout=0.1, steps=12, out_dir=None, **train):
    data = make_sequence_suite(300, seed=0)
    train_set, val_set, _ = data.split((0.8, 0.1, 0.1), seed=0)
    config = ModelConfig(**data.model_config_kwargs(), d_model=16, num_heads=2, d_ff=32, num_layers=1,
                         mode=mode, dropout=dropout, seed=3)
    settings = dict(steps=steps, batch_size=16, warmup_steps=3, log_every=2, eval_every=6, checkpoint_every=6)
    settings.update(train)
    model = MultiTaskTransformer(config)
    return Trainer(model, train_set, val_set, TrainConfig(**settings), out_dir=out_dir, progress=False)


def params(trainer):
    return {k: host(v).copy() for k, v in trainer.model.parameters().items()}


@pytest.mark.parametrize("mode", ["conditioned", "joint"])
def test_resume_equals_an_uninterrupted_run(tmp_path, mode):
    straight = setup(mode, out_dir=tmp_path / "straight")
    straight.fit()
    # the same run, stopped after the checkpoint at step 6 and resumed in a fresh process-like state
    first = setup(mode, out_dir=tmp_path / "split", steps=12)
    first.config.steps = 6
    first.fit()
    resumed = setup(mode, out_dir=tmp_path / "split", steps=12).resume()
    assert resumed.step == 6
    resumed.fit()
    a, b = params(straight), params(resumed)
    assert all(np.array_equal(a[k], b[k]) for k in a), [k for k in a if not np.array_equal(a[k], b[k])]
    steps = [r["step"] for r in read_history(tmp_path / "split" / "history.jsonl") if "losses" in r]
    assert steps == sorted(set(steps)) == list(range(2, 13, 2))       # no duplicates after the resume


def test_same_seed_same_metrics():
    one, two = setup(), setup()
    assert one.fit() == two.fit()
    assert all(np.array_equal(v, params(two)[k]) for k, v in params(one).items())


def test_history_is_written_as_it_goes(tmp_path):
    trainer = setup(out_dir=tmp_path, steps=6)
    trainer.fit()
    records = read_history(tmp_path / "history.jsonl")
    logged = [r for r in records if "losses" in r]
    assert [r["step"] for r in logged] == [2, 4, 6]
    assert set(logged[0]["losses"]) == {"sort", "reverse", "max", "mean"}
    assert any("validation" in r for r in records)
    assert (tmp_path / "model.npz").exists() and (tmp_path / "trainer.npz").exists()
    # a partial last line (a run killed mid-write) is skipped, not fatal
    with open(tmp_path / "history.jsonl", "a") as handle:
        handle.write('{"step": 7, "lo')
    assert len(read_history(tmp_path / "history.jsonl")) == len(records)


def test_nan_loss_is_reported_with_step_and_task():
    trainer = setup(steps=5)
    trainer.train_step(next(iter(trainer.batches)))
    trainer.model.heads[3].linear.params["bias"][...] = np.nan          # the regression head ("mean")
    with pytest.raises(TrainingError, match=r"step 2: the loss of task 'mean' is nan"):
        trainer.train_step(next(iter(trainer.batches)))


def test_training_reduces_every_task_loss():
    trainer = setup(dropout=0.0, steps=60, lr=3e-3)
    batch = next(iter(trainer.batches))
    before = {k: backend.to_float(v) for k, v in trainer.model.loss(batch).losses.items()}
    trainer.fit()
    after = {k: backend.to_float(v) for k, v in trainer.model.loss(batch).losses.items()}
    assert all(after[k] < before[k] for k in before), (before, after)


def test_bad_train_configs():
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="lr must be"):
        TrainConfig(lr=-1.0)
    with pytest.raises(ValueError, match="unknown tasks"):
        setup(weights={"colour": 1.0})


def test_evaluate_restores_training_mode():
    trainer = setup()
    metrics = evaluate(trainer.model, trainer.val_set)
    assert trainer.model.training
    assert set(metrics) == {"sort", "reverse", "max", "mean"}
    assert set(metrics["sort"]) == {"token_accuracy", "sequence_accuracy"}
    assert set(metrics["mean"]) == {"mse", "r2"}


def test_a_task_without_examples_is_logged_as_null_not_zero(tmp_path):
    trainer = setup(out_dir=tmp_path, steps=2, log_every=1, warmup_steps=1)
    batch = next(iter(trainer.batches))
    batch["task_ids"][...] = 0                                   # every example trains `sort`
    trainer._stream = iter([batch, batch])
    trainer.fit()
    logged = [r for r in read_history(tmp_path / "history.jsonl") if "losses" in r]
    assert logged[0]["losses"]["sort"] > 0
    assert logged[0]["losses"]["max"] is None and logged[0]["losses"]["mean"] is None


def test_conflict_logging_records_cosines_and_leaves_training_unchanged(tmp_path):
    plain = setup(dropout=0.0, steps=4, log_every=2, warmup_steps=1)
    plain.fit()
    logged = setup(dropout=0.0, steps=4, log_every=2, warmup_steps=1, log_conflict=True, out_dir=tmp_path)
    logged.fit()
    assert all(np.array_equal(v, params(logged)[k]) for k, v in params(plain).items())
    records = [r for r in read_history(tmp_path / "history.jsonl") if "losses" in r]
    cosine = np.array(records[0]["conflict"]["cosine"], dtype=float)
    assert cosine.shape == (4, 4)
    assert np.allclose(np.diag(cosine), 1.0)


# -- issue 11: the checkpoint pair and a torn history line ------------------------------------
def _tiny_run(tmp_path, steps=4):
    from tinymtt.cli import main
    run = tmp_path / "run"
    assert main(["train", "--examples", "200", "--d-model", "8", "--heads", "1", "--layers", "1", "--no-progress",
                 "--steps", str(steps), "--out", str(run)]) == 0
    return run


def test_resume_refuses_model_and_trainer_from_two_steps(tmp_path, capsys):
    from tinymtt.cli import main
    run = _tiny_run(tmp_path)
    model_at_4 = (run / "model.npz").read_bytes()
    assert main(["train", "--resume", "--out", str(run), "--steps", "8", "--no-progress"]) == 0
    (run / "model.npz").write_bytes(model_at_4)               # as if stopped between the two writes
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--steps", "12", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "model.npz holds step 4 but trainer.npz step 8" in err


def test_a_torn_last_history_line_is_dropped_and_said(tmp_path, capsys):
    from tinymtt.cli import main
    run = _tiny_run(tmp_path)
    with open(run / "history.jsonl", "a") as handle:
        handle.write('{"step": 5, "loss": 1.')
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--steps", "8", "--no-progress"]) == 0
    assert "dropped a torn last line" in capsys.readouterr().out
    assert all(json.loads(line) for line in (run / "history.jsonl").read_text().splitlines())


def test_a_broken_history_line_in_the_middle_names_the_file(tmp_path):
    from tinymtt.train.history import truncate_history
    path = tmp_path / "history.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"history.jsonl, line 2"):
        truncate_history(path, 3)
