"""The benchmark: its processes, its JSON, its torch-less fallbacks, the FLOP count and the profiler.

Everything runs on the hidden ``tiny`` config with one step and a small
reference matmul, so it takes seconds; there are no timing assertions.
"""

import importlib.util
import json
import os

import numpy as np
import pytest

import tinymtt.nn.basic
import tinymtt.ops
from tinymtt import backend
from tinymtt.cli import main
from tinymtt.commands import bench, timing
from tinymtt.commands.bench import profile_step
from tinymtt.commands.profiling import CATEGORIES

HAS_TORCH = importlib.util.find_spec("torch") is not None
ROW_KEYS = {"config", "tinymtt_ms", "tinymtt_spread_ms", "torch_ms", "torch_spread_ms", "ratio", "ratio_spread",
            "gflops", "limit_ms", "limit_fraction", "processes"}


@pytest.fixture
def quick(monkeypatch):
    """'small' becomes the tiny config and the reference matmul 128×128; torch (if present)
    runs on one thread here and in the measuring processes (OMP_NUM_THREADS, which they
    inherit): on a busy machine torch's thread pool can stall tiny steps for long."""
    monkeypatch.setitem(bench.CONFIGS, "small", bench.CONFIGS["tiny"])
    monkeypatch.setattr(bench, "MATMUL_SIZE", 128)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    if not HAS_TORCH:
        yield
        return
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _positive_float(value):
    return isinstance(value, float) and value > 0 and np.isfinite(value)


def test_main_json_keys_and_types(quick, capsys):
    code = main(["bench", "--config", "small", "--rounds", "2", "--repeats", "1", "--warmup", "0", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert isinstance(result["configs"], list) and len(result["configs"]) == 1
    assert result["rounds"] == 2 and len(result["matmul_gflops_spread"]) == 2
    row = result["configs"][0]
    assert ROW_KEYS <= set(row)
    assert row["config"] == "small"
    for key in ("tinymtt_ms", "gflops", "limit_ms", "limit_fraction"):
        assert _positive_float(row[key]), (key, row[key])
    low, high = row["tinymtt_spread_ms"]
    assert low <= row["tinymtt_ms"] <= high
    if row["torch_ms"] is None:   # torch absent (or no peer file): the torch fields are null, with a reason
        assert row["ratio"] is None and row["ratio_spread"] is None and result["torch_note"]
    else:
        assert _positive_float(row["torch_ms"])
        assert row["ratio"] == pytest.approx(row["tinymtt_ms"] / row["torch_ms"])
        assert row["torch_spread_ms"][0] <= row["torch_ms"] <= row["torch_spread_ms"][1]
    flops = bench.step_flops(bench.CONFIGS["tiny"])
    assert row["gflops"] == pytest.approx(flops / 1e9 / (row["tinymtt_ms"] / 1e3))
    # the limit: the step's matmul FLOPs at the rate of the reference matmul
    assert row["limit_ms"] == pytest.approx(1e3 * flops / (result["matmul_gflops"] * 1e9))
    assert row["limit_fraction"] == pytest.approx(row["limit_ms"] / row["tinymtt_ms"])


def test_every_measurement_is_its_own_process(quick):
    """The honest method: no peer shares a process with the bench or with the other peer."""
    result = bench.run_benchmark(("small",), rounds=2, repeats=1, warmup=0)
    processes = result["configs"][0]["processes"]
    assert len(processes) == 2   # one per round
    pids = [p["tinymtt_pid"] for p in processes] + [p["torch_pid"] for p in processes if p["torch_pid"]]
    assert os.getpid() not in pids
    assert len(set(pids)) == len(pids)   # a fresh interpreter every time
    assert not any(p["tinymtt_torch_loaded"] for p in processes)   # tinymtt's process never loads torch
    if HAS_TORCH:
        assert all(p["torch_pid"] for p in processes)


def test_a_failing_measurement_names_its_peer():
    with pytest.raises(RuntimeError, match="the tinymtt measurement failed: .*KeyError"):
        bench.run_worker({"peer": "tinymtt", "settings": {}, "repeats": 1, "warmup": 0})


def test_measure_in_process_reports_times_and_pid():
    for spec in ({"peer": "tinymtt", "settings": bench.CONFIGS["tiny"]}, {"peer": "matmul", "matmul_size": 32}):
        measured = timing.measure({**spec, "repeats": 3, "warmup": 1})
        assert len(measured["times_ms"]) == 3 and measured["pid"] == os.getpid()
        assert measured["median_ms"] == pytest.approx(np.median(measured["times_ms"]))
    with pytest.raises(ValueError, match="peer must be one of"):
        timing.measure({"peer": "jax", "repeats": 1, "warmup": 0})


def test_without_torch_the_torch_fields_are_null():
    result = bench.run_benchmark(("tiny",), rounds=1, repeats=1, warmup=0, with_torch=False, matmul_size=64)
    row = result["configs"][0]
    assert row["torch_ms"] is None and row["ratio"] is None and row["torch_gflops"] is None
    assert row["processes"][0]["torch_pid"] is None
    assert result["torch"] is None and "not requested" in result["torch_note"]
    assert _positive_float(row["tinymtt_ms"])
    json.dumps(result)   # plain JSON all the way down


def test_missing_peer_file_gives_null_with_the_reason(quick, monkeypatch, tmp_path):
    monkeypatch.setattr(timing, "PEER_PATH", tmp_path / "torch_peer.py")
    result = bench.run_benchmark(("tiny",), rounds=1, repeats=1, warmup=0, with_torch=True, matmul_size=64)
    assert result["configs"][0]["torch_ms"] is None
    expected = "not found" if HAS_TORCH else "not installed"
    assert expected in result["torch_note"]


@pytest.mark.skipif(not HAS_TORCH, reason="the PyTorch peer needs torch: pip install 'tinymtt[oracle]'")
def test_torch_peer_runs_and_learns_the_same_task(quick):
    settings = bench.CONFIGS["tiny"]
    peer, note = timing.load_peer()
    assert peer is not None, note
    step, synchronize, info = peer.make_step(settings, timing.host_batch(settings))
    losses = [float(step()) for _ in range(10)]
    synchronize()
    assert info["device"] == "cpu" and info["threads"] == 1   # as the fixture set it
    assert np.isfinite(losses).all() and losses[-1] < losses[0]   # AdamW makes progress on a fixed batch
    # the same loss scale as tinymtt at the start: Σ over 3 tasks of about log(V)
    assert losses[0] == pytest.approx(3 * np.log(settings["vocab_size"]), rel=0.3)


def test_tinymtt_step_learns_on_the_fixed_batch():
    settings = bench.CONFIGS["tiny"]
    step = timing.build_tinymtt(settings, timing.host_batch(settings))[0]
    losses = [backend.to_float(step()) for _ in range(30)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_step_flops_counts_every_matmul():
    s = dict(vocab_size=5, seq_len=3, d_model=4, num_heads=2, num_layers=2, d_ff=6, batch_size=7, num_tasks=3)
    rows = 7 * 3
    # (m, k, n) of every forward matmul, written out one by one
    per_block = [(rows, 4, 4)] * 4 + [(7 * 2 * 3, 2, 3), (7 * 2 * 3, 3, 2)] + [(rows, 4, 6), (rows, 6, 4)]
    forward = 2 * per_block + [(7, 3, 4), (rows, 4, 5)]
    assert bench.step_flops(s) == 3 * sum(2 * m * k * n for m, k, n in forward)


def test_profile_by_category_and_restores_the_ops():
    originals = (tinymtt.nn.basic.linear_forward, tinymtt.ops.gelu_backward)
    measured = timing.measure({"peer": "profile", "settings": bench.CONFIGS["tiny"], "repeats": 1, "warmup": 0})
    assert (tinymtt.nn.basic.linear_forward, tinymtt.ops.gelu_backward) == originals   # restored here
    assert measured["pid"] == os.getpid()
    profile = profile_step("tiny", steps=1, warmup=0)                                  # in its own process
    assert set(profile) == set(measured["profile"])
    assert set(profile["by_category"]) <= set(CATEGORIES.values()) | {"optimizer", "other"}
    for category in ("matmul/linear", "attention", "layernorm", "gelu", "embedding", "loss", "optimizer"):
        assert profile["by_category"][category] > 0, category
    assert sum(profile["by_category"].values()) == pytest.approx(profile["step_ms"])
    assert "matmul/linear: linear_backward" in profile["by_function"]


def test_table_and_profile_print(quick, capsys):
    assert main(["bench", "--config", "small", "--rounds", "1", "--repeats", "1", "--warmup", "0", "--no-torch",
                 "--profile"]) == 0
    out = capsys.readouterr().out
    assert "tinymtt ms" in out and "ratio" in out and "small" in out and "fresh process" in out
    assert "matmul/linear" in out and "profile of one step" in out


def test_bad_arguments():
    with pytest.raises(ValueError, match="configs"):
        bench.run_benchmark(("huge",))
    with pytest.raises(ValueError, match="repeats"):
        bench.run_benchmark(("tiny",), repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        bench.run_benchmark(("tiny",), warmup=-1)
    with pytest.raises(ValueError, match="rounds"):
        bench.run_benchmark(("tiny",), rounds=0)


@pytest.mark.parametrize("argv", [["--config", "huge"], ["--repeats", "many"], ["--no-such-option"]])
def test_bad_options_are_one_line_and_exit_code_2(argv, capsys):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("tinymtt bench:")


@pytest.mark.skipif(backend.cupy_available(), reason="checks the message shown when CuPy is missing")
def test_cupy_backend_without_a_gpu_is_a_clear_error(capsys):
    assert main(["bench", "--config", "tiny", "--backend", "cupy", "--rounds", "1", "--repeats", "1",
                 "--warmup", "0"]) == 2
    assert "cupy" in capsys.readouterr().err.lower()
