"""The benchmark: its JSON, its torch-less fallbacks, the FLOP count and the profiler.

Everything runs on the hidden ``tiny`` config with one step and a small
reference matmul, so it takes a second; there are no timing assertions.
"""

import importlib.util
import json

import numpy as np
import pytest

import tinymtt.nn.basic
import tinymtt.ops
from tinymtt import backend
from tinymtt.cli import main
from tinymtt.commands import bench
from tinymtt.commands.bench import profile_step
from tinymtt.commands.profiling import CATEGORIES

HAS_TORCH = importlib.util.find_spec("torch") is not None
ROW_KEYS = {"config", "tinymtt_ms", "torch_ms", "ratio", "gflops", "matmul_share"}


@pytest.fixture
def quick(monkeypatch):
    """'small' becomes the tiny config and the reference matmul 128×128; torch (if present)
    runs on one thread, restored afterwards: on a busy machine torch's thread pool can
    stall tiny steps for long. A run then takes a moment."""
    monkeypatch.setitem(bench.CONFIGS, "small", bench.CONFIGS["tiny"])
    monkeypatch.setattr(bench, "MATMUL_SIZE", 128)
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
    code = main(["bench", "--config", "small", "--repeats", "1", "--warmup", "0", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert isinstance(result["configs"], list) and len(result["configs"]) == 1
    row = result["configs"][0]
    assert ROW_KEYS <= set(row)
    assert row["config"] == "small"
    for key in ("tinymtt_ms", "gflops", "matmul_share"):
        assert _positive_float(row[key]), (key, row[key])
    if row["torch_ms"] is None:   # torch absent (or no peer file): both torch fields are null, with a reason
        assert row["ratio"] is None and result["torch_note"]
    else:
        assert _positive_float(row["torch_ms"])
        assert row["ratio"] == pytest.approx(row["tinymtt_ms"] / row["torch_ms"])
    assert row["gflops"] == pytest.approx(bench.step_flops(bench.CONFIGS["tiny"]) / 1e9 / (row["tinymtt_ms"] / 1e3))
    assert row["matmul_share"] == pytest.approx(row["gflops"] / result["matmul_gflops"])


def test_without_torch_the_torch_fields_are_null():
    result = bench.run_benchmark(("tiny",), repeats=1, warmup=0, with_torch=False, matmul_size=64)
    row = result["configs"][0]
    assert row["torch_ms"] is None and row["ratio"] is None and row["torch_gflops"] is None
    assert result["torch"] is None and "not requested" in result["torch_note"]
    assert _positive_float(row["tinymtt_ms"])
    json.dumps(result)   # plain JSON all the way down


def test_missing_peer_file_gives_null_with_the_reason(quick, monkeypatch, tmp_path):
    monkeypatch.setattr(bench, "PEER_PATH", tmp_path / "torch_peer.py")
    result = bench.run_benchmark(("tiny",), repeats=1, warmup=0, with_torch=True, matmul_size=64)
    assert result["configs"][0]["torch_ms"] is None
    expected = "not found" if HAS_TORCH else "not installed"
    assert expected in result["torch_note"]


@pytest.mark.skipif(not HAS_TORCH, reason="the PyTorch peer needs torch: pip install 'tinymtt[oracle]'")
def test_torch_peer_runs_and_learns_the_same_task(quick):
    settings = bench.CONFIGS["tiny"]
    peer, note = bench.load_peer()
    assert peer is not None, note
    step, synchronize, info = peer.make_step(settings, bench.host_batch(settings))
    losses = [float(step()) for _ in range(10)]
    synchronize()
    assert info["device"] == "cpu" and info["threads"] == 1   # as the fixture set it
    assert np.isfinite(losses).all() and losses[-1] < losses[0]   # AdamW makes progress on a fixed batch
    # the same loss scale as tinymtt at the start: Σ over 3 tasks of about log(V)
    assert losses[0] == pytest.approx(3 * np.log(settings["vocab_size"]), rel=0.3)


def test_tinymtt_step_learns_on_the_fixed_batch():
    settings = bench.CONFIGS["tiny"]
    step = bench.build_tinymtt(settings, bench.host_batch(settings))[0]
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
    profile = profile_step("tiny", steps=1, warmup=0)
    assert (tinymtt.nn.basic.linear_forward, tinymtt.ops.gelu_backward) == originals
    assert set(profile["by_category"]) <= set(CATEGORIES.values()) | {"optimizer", "other"}
    for category in ("matmul/linear", "attention", "layernorm", "gelu", "embedding", "loss", "optimizer"):
        assert profile["by_category"][category] > 0, category
    assert sum(profile["by_category"].values()) == pytest.approx(profile["step_ms"])
    assert "matmul/linear: linear_backward" in profile["by_function"]


def test_table_and_profile_print(quick, capsys):
    assert main(["bench", "--config", "small", "--repeats", "1", "--warmup", "0", "--no-torch", "--profile"]) == 0
    out = capsys.readouterr().out
    assert "tinymtt ms" in out and "ratio" in out and "small" in out
    assert "matmul/linear" in out and "profile of one step" in out


def test_bad_arguments():
    with pytest.raises(ValueError, match="configs"):
        bench.run_benchmark(("huge",))
    with pytest.raises(ValueError, match="repeats"):
        bench.run_benchmark(("tiny",), repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        bench.run_benchmark(("tiny",), warmup=-1)


@pytest.mark.parametrize("argv", [["--config", "huge"], ["--repeats", "many"], ["--no-such-option"]])
def test_bad_options_are_one_line_and_exit_code_2(argv, capsys):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("tinymtt bench:")


@pytest.mark.skipif(backend.cupy_available(), reason="checks the message shown when CuPy is missing")
def test_cupy_backend_without_a_gpu_is_a_clear_error(capsys):
    assert main(["bench", "--config", "tiny", "--backend", "cupy", "--repeats", "1", "--warmup", "0"]) == 2
    assert "cupy" in capsys.readouterr().err.lower()
