"""The model with task modules and branch layers: the defaults unchanged, per-example parameters,
joint mode's trunk, config checks, checkpoints and resume, the affinity tools."""

import json
import re
import signal

import numpy as np
import pytest

from tinymtt import backend, checkpoint
from tinymtt.cli import main
from tinymtt.config import ModelConfig
from tinymtt.model import MultiTaskTransformer
from tinymtt.train import Trainer

from helpers import host

TASKS = [dict(name="tokens", kind="token", num_outputs=4), dict(name="label", kind="sequence", num_outputs=3),
         dict(name="value", kind="regression", num_outputs=2)]
MODULES = ["task-norm", "lora", "mmoe"]


def config(**changes):
    settings = dict(tasks=TASKS, vocab_size=6, max_len=8, d_model=8, num_heads=2, d_ff=16, num_layers=2,
                    dtype="float64", lora_rank=2, norm_embed_dim=3)
    return ModelConfig(**(settings | changes))


def batch(mode, size=4, seed=0):
    rng = np.random.default_rng(seed)
    out = {"inputs": backend.to_device(rng.integers(0, 6, (size, 5))),
           "mask": backend.to_device(np.arange(5)[None, :] < rng.integers(1, 6, size)[:, None]),
           "targets": {"tokens": backend.to_device(rng.integers(0, 4, (size, 5))),
                       "label": backend.to_device(rng.integers(0, 3, size)),
                       "value": backend.to_device(rng.standard_normal((size, 2)))}}
    if mode == "conditioned":
        out["task_ids"] = backend.to_device(rng.integers(0, 3, size))
    return out


def loss_and_gradients(model, data):
    model.zero_grad()
    total = model.loss(data).total
    model.backward()
    return host(total), {k: host(v).copy() for k, v in model.gradients().items()}


def test_branch_layers_l_is_todays_joint_mode_bit_for_bit():
    data = batch("joint")
    plain, branched = (MultiTaskTransformer(config(mode="joint", branch_layers=k)) for k in (None, 2))
    assert list(plain.parameters()) == list(branched.parameters())
    total, grads = loss_and_gradients(plain, data)
    total_k, grads_k = loss_and_gradients(branched, data)
    assert np.array_equal(total, total_k)
    assert all(np.array_equal(grads[k], grads_k[k]) for k in grads)


def test_the_trunk_runs_once_per_example_and_the_branch_once_per_stream():
    model = MultiTaskTransformer(config(mode="joint", branch_layers=1, task_module="lora"))
    model.loss(batch("joint", size=4))
    trunk, branch = model.encoder.blocks
    assert trunk.norm1.saved().x_hat.shape[0] == 4 and branch.norm1.saved().x_hat.shape[0] == 4 * 3
    assert trunk.task_module == "none" and branch.task_module == "lora"   # the trunk is shared by every task
    assert not any(name.startswith("encoder.blocks.0.") and "lora" in name for name in model.parameters())


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("mode", ["conditioned", "joint"])
def test_each_example_gets_its_tasks_parameters(module, mode):
    """Permuting the batch permutes the outputs: the per-task parameters follow each example, not its place."""
    model = MultiTaskTransformer(config(mode=mode, task_module=module))
    for value in model.encoder.parameters().values():      # off the start (B = 0, W_γ = 0 change nothing)
        value[...] = value + 0.3 * np.random.default_rng(1).standard_normal(value.shape)
    data = batch(mode)
    order = np.array([2, 0, 3, 1])
    permuted = {"inputs": data["inputs"][order], "mask": data["mask"][order],
                "targets": {k: v[order] for k, v in data["targets"].items()}}
    if mode == "conditioned":
        permuted["task_ids"] = data["task_ids"][order]
    with model.evaluating():
        outputs, moved = model.forward(data), model.forward(permuted)
    for name in outputs:
        np.testing.assert_allclose(host(moved[name]), host(outputs[name])[order], rtol=1e-12, atol=1e-12)
    if mode == "conditioned":   # and another task id changes the output of that example
        other = dict(data, task_ids=(data["task_ids"] + 1) % 3)
        with model.evaluating():
            assert not np.allclose(host(model.forward(other)["label"]), host(outputs["label"]))


@pytest.mark.parametrize("changes, message", [
    (dict(mode="conditioned", branch_layers=1), "branch_layers applies to joint mode only"),
    (dict(mode="joint", branch_layers=3), r"branch_layers must lie in 1..num_layers=2, got 3"),
    (dict(mode="joint", branch_layers=0), "branch_layers must be an integer >= 1"),
    (dict(task_module="adapter"), "task_module must be one of"),
    (dict(lora_rank=0), "lora_rank must be an integer >= 1"),
    (dict(task_module="mmoe", lora_ffn=True), "True needs task_module='lora'")])
def test_bad_config_values_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        config(**changes)


@pytest.mark.parametrize("module", MODULES)
def test_checkpoint_round_trip_with_a_task_module(tmp_path, module):
    model = MultiTaskTransformer(config(mode="joint", task_module=module, num_experts=3, branch_layers=1))
    for value in model.parameters().values():
        value[...] = value + 0.1
    loaded = checkpoint.load(checkpoint.save(model, tmp_path / "model.npz"))
    assert loaded.config == model.config
    assert ModelConfig.from_dict(json.loads(json.dumps(model.config.to_dict()))) == model.config
    assert list(loaded.parameters()) == list(model.parameters())
    assert all(np.array_equal(host(loaded.parameters()[k]), host(v)) for k, v in model.parameters().items())
    data = batch("joint")
    assert np.array_equal(host(loaded.loss(data).total), host(model.loss(data).total))


class StopAt:
    """Sends this process a SIGINT at one step, as Ctrl-C would."""

    def __init__(self, step):
        self.step = step

    def after_backward(self, trainer, step):
        if step.number == self.step:
            signal.raise_signal(signal.SIGINT)

    def after_step(self, trainer, step):
        pass


TINY = ["train", "--examples", "200", "--d-model", "8", "--heads", "1", "--layers", "2", "--no-progress",
        "--batch-size", "8"]


@pytest.mark.parametrize("options", [["--task-module", "task-norm"],
                                     ["--task-module", "lora", "--lora-rank", "2", "--lora-ffn"],
                                     ["--task-module", "mmoe", "--experts", "3", "--mode", "joint",
                                      "--branch-layers", "1"]])
def test_resuming_equals_an_uninterrupted_run(tmp_path, options, capsys, monkeypatch):
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    assert main(TINY + options + ["--steps", "6", "--out", str(whole)]) == 0
    original = Trainer.__init__
    monkeypatch.setattr(Trainer, "__init__", lambda self, *a, **k: original(self, *a, **{**k, "callbacks": [StopAt(3)]}))
    assert main(TINY + options + ["--steps", "6", "--out", str(halves)]) == 130      # Ctrl-C after step 3
    monkeypatch.undo()
    assert main(["train", "--resume", "--out", str(halves), "--no-progress"]) == 0
    capsys.readouterr()
    a, b = checkpoint.load(whole / "model.npz"), checkpoint.load(halves / "model.npz")
    assert a.config == b.config and a.config.task_module == options[1]
    assert all(np.array_equal(host(v), host(b.parameters()[k])) for k, v in a.parameters().items())
    assert (whole / "gates.png").exists() == (options[1] == "mmoe")


def test_the_affinity_tools_keep_working_with_a_task_module(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(TINY + ["--task-module", "lora", "--mode", "joint", "--steps", "4", "--log-conflict",
                        "--out", str(run)]) == 0
    records = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert any("conflict" in r for r in records) and (run / "conflict.png").exists()
    model = checkpoint.load(run / "model.npz")
    data = {"inputs": backend.to_device(np.array([[3, 4, 5, 6]])), "mask": backend.to_device(np.ones((1, 4), bool))}
    model.forward(data)
    affinity = host(model.task_attention.affinity(data["mask"]))
    assert affinity.shape == (4, 4)          # the sequence suite's 4 tasks
    np.testing.assert_allclose(affinity.sum(axis=1), 1.0)


@pytest.mark.parametrize("argv, message", [
    (["--branch-layers", "1"], "--branch-layers applies to --mode joint only"),
    (["--mode", "joint", "--branch-layers", "3"], r"--branch-layers must lie in 1..--layers \(2\), got 3"),
    (["--lora-rank", "2"], "--lora-rank applies to --task-module lora only"),
    (["--lora-ffn"], "--lora-ffn applies to --task-module lora only"),
    (["--task-module", "adapter"], "invalid choice"),
    (["--branch-layers", "0"], "must be > 0")])
def test_bad_task_options_are_one_line_and_exit_2(argv, message, tmp_path, capsys):
    assert main(TINY + argv + ["--steps", "2", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
