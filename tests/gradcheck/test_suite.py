"""tinymtt.gradcheck.suite: every op, layer and the model checked in seconds; planted bugs show up."""

import math

import numpy as np
import pytest

import tinymtt.model
import tinymtt.nn
import tinymtt.nn.basic
import tinymtt.ops
from tinymtt import gradcheck
from tinymtt.gradcheck.suite import CheckRow, format_table, run_checks


@pytest.fixture(scope="module")
def rows():
    return run_checks()


def ops_in_package():
    """Every op of tinymtt.ops, from its forward functions (a new op appears here by itself)."""
    names = sorted(n[:-len("_forward")] for n in dir(tinymtt.ops) if n.endswith("_forward"))
    assert names and all(hasattr(tinymtt.ops, f"{n}_backward") for n in names)
    return names


def layers_in_package():
    module = tinymtt.nn.Module
    return sorted(name for name, value in vars(tinymtt.nn).items()
                  if isinstance(value, type) and issubclass(value, module) and value is not module)


def by_name(rows):
    return {r.name: r for r in rows}


def test_every_check_passes_on_the_real_code(rows):
    assert rows and all(r.passed for r in rows), format_table(rows)
    for r in rows:
        assert isinstance(r, CheckRow) and r.group in ("op", "layer", "model")
        assert 0 <= r.worst <= r.tolerance and r.seconds >= 0 and r.detail == ""


def test_every_op_of_tinymtt_ops_has_a_row(rows):
    assert sorted(r.name for r in rows if r.group == "op") == ops_in_package()
    assert all(r.tolerance == gradcheck.TOLERANCE for r in rows if r.group == "op")


def test_every_layer_of_tinymtt_nn_has_a_row(rows):
    layer_rows = [r.name for r in rows if r.group == "layer"]
    missing = [name for name in layers_in_package() if not any(row.split(" ")[0] == name for row in layer_rows)]
    assert missing == []
    for name in ("TransformerBlock (pre-LN)", "TransformerBlock (post-LN)", "TaskAttention (gate 0.4)"):
        assert name in layer_rows


def test_the_model_is_checked_in_both_modes_with_every_task_module_and_branching(rows):
    models = [r.name for r in rows if r.group == "model"]
    assert models[:2] == ["MultiTaskTransformer (conditioned)", "MultiTaskTransformer (joint)"]
    assert "MultiTaskTransformer (joint, branch layers 1)" in models
    assert "MultiTaskTransformer (conditioned, task module lora, lora ffn True)" in models
    for module in ("task-norm", "lora", "mmoe"):
        for mode in ("conditioned", "joint"):
            assert f"MultiTaskTransformer ({mode}, task module {module})" in models
    assert all(r.tolerance == gradcheck.MODEL_TOLERANCE for r in rows if r.group == "model")


def test_the_whole_run_takes_seconds(rows):
    assert sum(r.seconds for r in rows) < 15


def test_another_seed_passes_too():
    rows = run_checks(seed=7)
    assert all(r.passed for r in rows), format_table(rows)


def test_only_filters_by_part_of_the_name():
    names = [r.name for r in run_checks(only="Attention")]
    assert names == ["attention", "MultiHeadAttention", "TaskAttention (gate 0.4)"]
    assert run_checks(only="no check has this name") == []
    with pytest.raises(TypeError, match="only must be a string"):
        run_checks(only=3)


def test_a_planted_op_bug_fails_its_row_only(monkeypatch):
    def wrong_softmax_backward(dout, cache):
        return dout * cache.probs   # forgets the − p·Σ(dout·p) term

    monkeypatch.setattr(tinymtt.ops, "softmax_backward", wrong_softmax_backward)
    rows = by_name(run_checks(only="softmax"))
    assert set(rows) == {"softmax", "log_softmax"}
    assert not rows["softmax"].passed and rows["softmax"].worst > gradcheck.SURELY_WRONG
    assert "dx" in rows["softmax"].detail                    # the student-facing verdict names the gradient
    assert rows["log_softmax"].passed


def test_a_planted_layer_bug_fails_the_layer_row(monkeypatch):
    real = tinymtt.nn.basic.layernorm_backward

    def doubled_dgamma(dout, cache):
        dx, dgamma, dbeta = real(dout, cache)
        return dx, 2 * dgamma, dbeta

    monkeypatch.setattr(tinymtt.nn.basic, "layernorm_backward", doubled_dgamma)
    rows = by_name(run_checks(only="layernorm"))
    assert rows["layernorm"].passed                           # the op itself is fine
    assert not rows["LayerNorm"].passed and rows["LayerNorm"].worst > gradcheck.SURELY_WRONG
    assert "gamma" in rows["LayerNorm"].detail                 # the coordinate check names the parameter


def test_a_planted_model_bug_fails_every_model_row(monkeypatch):
    real = tinymtt.model.weighted_sum_backward

    def halved(dout, cache):
        dlosses, dweights = real(dout, cache)
        return dlosses / 2, dweights

    monkeypatch.setattr(tinymtt.model, "weighted_sum_backward", halved)
    rows = run_checks(only="MultiTaskTransformer")
    assert len(rows) == 11 and not any(r.passed for r in rows)
    assert all(r.worst > gradcheck.SURELY_WRONG for r in rows)


def test_a_check_that_raises_becomes_a_failing_row(monkeypatch):
    def broken(dout, cache):
        raise RuntimeError("boom in gelu_backward")

    monkeypatch.setattr(tinymtt.ops, "gelu_backward", broken)
    rows = by_name(run_checks(only="gelu"))
    row = rows["gelu"]
    assert not row.passed and math.isinf(row.worst)
    assert rows["GELU"].passed                                 # the layer calls its own import, unpatched
    assert "RuntimeError: boom in gelu_backward" in row.detail


def test_a_nan_gradient_never_passes(monkeypatch):
    monkeypatch.setattr(tinymtt.ops, "relu_backward", lambda dout, cache: dout * np.nan)
    row = by_name(run_checks(only="relu"))["relu"]
    assert not row.passed and math.isinf(row.worst)


def test_a_new_op_without_a_check_fails(monkeypatch):
    monkeypatch.setattr(tinymtt.ops, "square_forward", lambda x: (x * x, x), raising=False)
    monkeypatch.setattr(tinymtt.ops, "square_backward", lambda dout, x: 2 * x * dout, raising=False)
    (row,) = run_checks(only="square")
    assert row.group == "op" and not row.passed
    assert "square_forward has no self-check" in row.detail and "_OP_CASES" in row.detail


def test_format_table_has_the_columns_and_the_summary(rows):
    table = format_table(rows)
    header = table.splitlines()[0]
    for column in ("check", "worst rel. error", "tolerance", "result"):
        assert column in header
    for r in rows:
        assert any(line.startswith(r.name + " ") and line.endswith("pass") for line in table.splitlines())
    assert f"{len(rows)} of {len(rows)} checks passed" in table
    assert gradcheck.THRESHOLDS in table.splitlines()[-1]


def test_format_table_shows_failures_and_why():
    rows = [CheckRow("op", "good", 3e-10, 1e-7, True, 0.01),
            CheckRow("op", "bad", 0.5, 1e-7, False, 0.02, "dx is off by a constant factor 2"),
            CheckRow("model", "broken", math.inf, 1e-6, False, 0.0, "RuntimeError: boom")]
    lines = format_table(rows).splitlines()
    assert any(line.startswith("good") and "3.0e-10" in line and line.endswith("pass") for line in lines)
    assert any(line.startswith("bad") and "5.0e-01" in line and line.endswith("FAIL") for line in lines)
    assert any(line.startswith("broken") and "inf" in line and line.endswith("FAIL") for line in lines)
    assert "    dx is off by a constant factor 2" in lines and "    RuntimeError: boom" in lines
    assert any(line.startswith("1 of 3 checks passed") for line in lines)
