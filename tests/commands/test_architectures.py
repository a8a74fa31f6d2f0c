"""tinymtt compare --architectures: the FLOP counter against the bench's, the parameter split, the JSON rows."""

import json

import pytest

from tinymtt.cli import main
from tinymtt.commands import bench
from tinymtt.commands.architectures import ARCHITECTURES, parameter_split, step_flops
from tinymtt.config import ModelConfig, TaskSpec
from tinymtt.model import MultiTaskTransformer


def bench_model_config(settings, **changes):
    s = settings
    tasks = [TaskSpec(f"task{i}", "token", s["vocab_size"]) for i in range(s["num_tasks"])]
    return ModelConfig(tasks=tasks, vocab_size=s["vocab_size"], max_len=s["seq_len"], d_model=s["d_model"],
                       num_heads=s["num_heads"], d_ff=s["d_ff"], num_layers=s["num_layers"], **changes)


@pytest.mark.parametrize("name", ["tiny", "small", "medium"])
def test_the_conditioned_count_is_the_bench_count_plus_the_heads_the_bench_leaves_out(name):
    """bench.step_flops counts each example's own head; the model computes all T heads on every example."""
    s = bench.CONFIGS[name]
    rows, extra_heads = s["batch_size"] * s["seq_len"], s["num_tasks"] - 1
    expected = bench.step_flops(s) + 3 * extra_heads * 2 * rows * s["d_model"] * s["vocab_size"]
    assert step_flops(bench_model_config(s), s["batch_size"], s["seq_len"]) == expected


def test_what_each_architecture_adds_to_the_count():
    s = bench.CONFIGS["tiny"] | {"num_layers": 3}
    b, n, d, t, layers = s["batch_size"], s["seq_len"], s["d_model"], s["num_tasks"], 3
    rows = b * n

    def flops(**changes):
        return step_flops(bench_model_config(s, **changes), b, n)

    block = 8 * rows * d * d + 4 * b * n * n * d + 4 * rows * d * s["d_ff"]   # one block on B sequences
    assert flops(task_module="lora", lora_rank=2) - flops() == 3 * layers * 4 * 4 * rows * d * 2
    assert flops(task_module="lora", lora_rank=2, lora_ffn=True) - flops(task_module="lora", lora_rank=2) == \
        3 * layers * 2 * 2 * rows * 2 * (d + s["d_ff"])                    # x·A_t·B_t on D→F and F→D
    assert flops(task_module="mmoe", num_experts=3) - flops() == 3 * layers * (2 * 4 * rows * d * s["d_ff"]
                                                                                + 2 * rows * d * 3)
    # joint: the K branch blocks run T times, the trunk once; K = L is the whole encoder per stream
    for k in (1, 2):
        assert flops(mode="joint", branch_layers=3) - flops(mode="joint", branch_layers=k) == \
            3 * (layers - k) * (t - 1) * block
    assert flops(mode="joint") == flops(mode="joint", branch_layers=3)


@pytest.mark.parametrize("changes", [{}, {"task_module": "lora"}, {"task_module": "lora", "lora_ffn": True},
                                     {"task_module": "task-norm"},
                                     {"task_module": "mmoe"}, {"mode": "joint", "branch_layers": 1}])
def test_params_per_task_is_what_one_more_task_adds(changes):
    def model(tasks):
        return MultiTaskTransformer(ModelConfig(tasks=[TaskSpec(f"t{i}", "sequence", 3) for i in range(tasks)],
                                                vocab_size=6, max_len=8, d_model=8, num_heads=2, d_ff=16,
                                                num_layers=2, **changes))
    three, four = model(3), model(4)
    shared, per_task = parameter_split(three)
    assert shared + 3 * per_task == three.num_parameters()
    assert four.num_parameters() - three.num_parameters() == per_task     # identical tasks: each costs the same
    assert parameter_split(four)[0] == shared     # the shared part does not grow with T (task attention neither)


def test_json_rows_of_a_tiny_run(capsys):
    code = main(["compare", "--architectures", "--json", "--seeds", "2", "--steps", "3", "--examples", "200",
                 "--d-model", "8", "--batch-size", "8", "--tasks", "max,mean"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    results = json.loads(captured.out)
    rows = {row["name"]: row for row in results["rows"]}
    assert list(rows) == list(ARCHITECTURES) + ["single-task"]
    for row in rows.values():
        assert {"params_shared", "params_per_task", "gflop_per_step", "ms_per_step", "metrics", "delta"} <= set(row)
        assert row["gflop_per_step"] > 0 and row["ms_per_step"] > 0
        assert set(row["metrics"]) == {"max", "mean"} and len(row["metrics"]["max"]["values"]) == 2
    assert rows["single-task"]["params_shared"] == 0 and rows["single-task"]["delta"]["value"] == 0
    assert rows["lora"]["params_shared"] == rows["conditioned"]["params_shared"]   # LoRA adds only per-task tables
    assert rows["lora"]["params_per_task"] > rows["conditioned"]["params_per_task"]
    assert rows["joint-branch1"]["gflop_per_step"] < rows["joint"]["gflop_per_step"]
    assert results["budget"]["joint_batch"] == 4 and results["budget"]["conditioned_batch"] == 8
    assert "[1/" in captured.err


@pytest.mark.parametrize("argv, word", [(["--strategies", "fixed"], "--strategies"), (["--mode", "joint"], "--mode"),
                                        (["--no-baselines"], "--no-baselines")])
def test_options_that_do_not_apply_are_one_line_and_exit_2(argv, word, capsys):
    assert main(["compare", "--architectures"] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and word in err and "does not apply" in err
