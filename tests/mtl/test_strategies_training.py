"""Every strategy through its one interface: a toy conflicting pair, the Trainer in both modes,
exact resume, `tinymtt train --strategy NAME`, and bad options."""

import itertools
import json

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.cli import main
from tinymtt.config import ModelConfig
from tinymtt.data import make_sequence_suite
from tinymtt.model import MultiTaskTransformer
from tinymtt.gradcheck import rel_error
from tinymtt.mtl import STRATEGIES, cagrad, make_strategy, mgda, pcgrad, strategy_options
from tinymtt.train import TrainConfig, Trainer, read_history

from helpers import host

LOSS_METHODS = ("fixed", "uncertainty", "dwa", "rlw", "famo")


A, B = np.array([1.0, 0.0, 0.5]), np.array([-1.0, 1.0, 0.0])


def toy_losses_and_gradients(theta):
    """Two tasks on a shared θ ∈ R³: L1 = ½‖θ − a‖², L2 = 2‖θ − b‖²; rows ∇L1 = θ − a, ∇L2 = 4(θ − b)."""
    losses = {"one": 0.5 * (theta - A) @ (theta - A), "two": 2.0 * (theta - B) @ (theta - B)}
    return losses, np.stack([theta - A, 4.0 * (theta - B)])


def toy_run(name, steps=6, lr=0.1, **options):
    """Drives the strategy exactly as the trainer does; returns θ after ``steps`` updates from θ = 0."""
    theta = np.zeros(3)
    strategy = make_strategy(name, 2, **options)
    strategy.attach({"theta.weight": slice(0, 3)})
    counted = {"one": True, "two": True}
    for _ in range(steps):
        losses, grads = toy_losses_and_gradients(theta)
        weights = strategy.task_weights(losses, counted)
        rows = backend.to_device(weights[:, None] * grads)
        update = host(strategy.combine(rows, losses, counted)) if strategy.needs_task_gradients else weights @ grads
        theta = theta - lr * update
        if strategy.needs_losses_after_step:                 # FAMO: the losses at the moved θ
            strategy.losses_after_step(toy_losses_and_gradients(theta)[0], counted)
        strategy.after_step(losses, counted)
    return theta


def test_toy_conflict_the_strategies_take_different_paths():
    losses, grads = toy_losses_and_gradients(np.zeros(3))
    assert grads[0] @ grads[1] < 0                                    # the pair conflicts at the start
    paths = {name: toy_run(name, **({"window": 1} if name == "dwa" else {})) for name in STRATEGIES}
    for one, two in itertools.combinations(STRATEGIES, 2):
        gap = np.linalg.norm(paths[one] - paths[two]) / np.linalg.norm(paths[one])
        assert gap > 1e-3, (one, two, gap)
    for name, theta in paths.items():                                 # and every one of them descends
        assert sum(toy_losses_and_gradients(theta)[0].values()) < sum(losses.values()), name


@pytest.mark.parametrize("name, rule", [("pcgrad", pcgrad), ("mgda", mgda), ("cagrad", cagrad)])
def test_gradient_methods_leave_out_tasks_not_counted(name, rule):
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((3, 7))                  # row 1 is not zero: it must be ignored, not just small
    strategy = make_strategy(name, 3, **({"shuffle": False} if name == "pcgrad" else {}))
    counted = {"a": True, "b": False, "c": True}
    assert np.array_equal(strategy.task_weights({"a": 1.0, "b": 0.0, "c": 2.0}, counted), [1.0, 0.0, 1.0])
    combined = strategy.combine(backend.to_device(grads), {"a": 1.0, "b": 0.0, "c": 2.0}, counted)
    assert rel_error(combined, host(rule(backend.to_device(grads[[0, 2]])))) <= 1e-14
    assert strategy.last_weights[1] == 0.0 and (strategy.last_weights[[0, 2]] > 0).all()


def trainer(mode, strategy, out_dir=None, steps=4, options=None, dropout=0.0):
    data = make_sequence_suite(200, seed=0)
    train_set, val_set, _ = data.split((0.8, 0.1, 0.1), seed=0)
    config = ModelConfig(**data.model_config_kwargs(), d_model=16, num_heads=2, d_ff=32, num_layers=1, mode=mode,
                         dropout=dropout, seed=3)
    train = TrainConfig(steps=steps, batch_size=16, warmup_steps=1, log_every=1, eval_every=100,
                        checkpoint_every=3, strategy=strategy, strategy_options=options)
    return Trainer(MultiTaskTransformer(config), train_set, val_set, train, out_dir=out_dir, progress=False)


@pytest.mark.parametrize("mode", ["conditioned", "joint"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_trains_in_both_modes(tmp_path, mode, strategy):
    run = trainer(mode, strategy, out_dir=tmp_path, options={"window": 1} if strategy == "dwa" else None)
    before = {k: host(v).copy() for k, v in run.model.parameters().items()}
    run.fit()
    records = [r for r in read_history(tmp_path / "history.jsonl") if "losses" in r]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    for record in records:
        assert np.isfinite(record["loss"]) and all(np.isfinite(v) for v in record["losses"].values())
        assert set(record["weights"]) == set(record["losses"])
        weights = np.array(list(record["weights"].values()))
        assert np.isfinite(weights).all()
        if strategy in LOSS_METHODS + ("gradnorm",):
            assert (weights > 0).all()                  # every task is in every batch here: all positive
    after = run.model.parameters()
    assert all(host(after[k]).dtype == np.float32 for k in after)
    assert any(not np.array_equal(host(after[k]), before[k]) for k in before)


# the split falls inside a DWA window; cagrad (stateless) checks the gradient path alone
@pytest.mark.parametrize("strategy, options", [("uncertainty", None), ("dwa", {"window": 2}),
                                               ("gradnorm", {"alpha": 1.0}), ("pcgrad", None), ("cagrad", None),
                                               ("rlw", None), ("dbmtl", None), ("imtl", None), ("famo", None),
                                               ("nashmtl", None), ("gradvac", None)])
def test_resume_is_exact_with_a_strategy(tmp_path, strategy, options):
    straight = trainer("conditioned", strategy, tmp_path / "straight", steps=7, options=options, dropout=0.1)
    straight.fit()
    first = trainer("conditioned", strategy, tmp_path / "split", steps=7, options=options, dropout=0.1)
    first.config.steps = 3
    first.fit()
    resumed = trainer("conditioned", strategy, tmp_path / "split", steps=7, options=options, dropout=0.1).resume()
    assert resumed.step == 3
    resumed.fit()
    for key, value in straight.model.parameters().items():
        assert np.array_equal(host(value), host(resumed.model.parameters()[key])), key
    for key, value in straight.strategy.state_dict().items():
        assert np.array_equal(np.asarray(value), np.asarray(resumed.strategy.state_dict()[key])), key
    assert bool(straight.strategy.state_dict()) == (strategy != "cagrad")     # the others carry state


@pytest.fixture
def no_plot(monkeypatch):
    """The curves figure takes ~2 s to draw and is tested in tests/test_cli.py; here it is skipped."""
    import tinymtt.commands.train
    monkeypatch.setattr(tinymtt.commands.train, "plot_history", lambda *args, **kwargs: None)


TINY = ["--examples", "200", "--d-model", "16", "--heads", "2", "--layers", "1", "--batch-size", "16",
        "--no-progress", "--steps", "3"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_cli_trains_with_every_strategy(tmp_path, capsys, no_plot, strategy):
    run = tmp_path / strategy
    assert main(["train", "--strategy", strategy, "--out", str(run), *TINY]) == 0
    assert f"{strategy} strategy" in capsys.readouterr().out
    document = json.loads((run / "config.json").read_text())
    assert document["train"]["strategy"] == strategy
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 0


def test_cli_strategy_options(tmp_path, capsys, no_plot):
    run = tmp_path / "gradnorm"
    assert main(["train", "--strategy", "gradnorm", "--strategy-option", "alpha=0.5", "--strategy-option",
                 "lr=0.1", "--out", str(run), *TINY]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["strategy_options"] == {"alpha": 0.5, "lr": 0.1}
    capsys.readouterr()
    for argv, message in [
        (["--strategy", "pcgrad", "--strategy-option", "alpha=1"], "strategy 'pcgrad' has no option alpha"),
        (["--strategy", "cagrad", "--strategy-option", "c=-1"], "c must be a finite number"),
        (["--strategy", "dwa", "--strategy-option", "window"], "expected key=value"),
        (["--strategy", "imtl", "--strategy-option", "variant=both"], "variant must be one of ('hybrid', 'loss', "
                                                                       "'gradient'), got 'both'"),
        (["--strategy", "mgda", "--strategy-option", "normalization=l1"], "normalization must be one of"),
        (["--strategy", "mgda", "--weights", "sort=2"], "weights are the fixed strategy's"),
        (["--strategy", "sgd"], "invalid choice: 'sgd'"),
    ]:
        out = tmp_path / "bad"
        assert main(["train", *argv, "--out", str(out), *TINY]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert not (out / "config.json").exists()


def test_make_strategy_names_and_options():
    assert STRATEGIES == ("fixed", "uncertainty", "dwa", "gradnorm", "pcgrad", "mgda", "cagrad", "rlw", "dbmtl",
                          "imtl", "famo", "nashmtl", "alignedmtl", "gradvac")
    for name in STRATEGIES:
        strategy = make_strategy(name, 3)
        assert strategy.name == name and strategy.needs_task_gradients == (name not in LOSS_METHODS)
    assert strategy_options("gradnorm") == {"alpha": 1.5, "lr": 0.025, "layer": None}
    with pytest.raises(ValueError, match="strategy must be one of"):
        make_strategy("adam", 2)
    with pytest.raises(ValueError, match=r"has no option tau; its options: window \(default 50\)"):
        make_strategy("dwa", 2, tau=1.0)
    with pytest.raises(ValueError, match="strategy must be one of"):
        TrainConfig(strategy="nope")
