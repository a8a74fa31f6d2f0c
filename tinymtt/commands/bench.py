"""The training-step benchmark: tinymtt beside its PyTorch peer.

    tinymtt bench [--config small|medium|all] [--backend numpy|cupy] [--json] [--profile]

One step = zero_grad, loss, backward, AdamW.step of a conditioned-mode
MultiTaskTransformer (3 token tasks, pre-LN, GELU, dropout 0, float32) on a
fixed batch of random tokens; the time is the median over ``repeats`` steps
after ``warmup`` steps. When torch is installed, the same model in PyTorch
eager (``benchmarks/torch_peer.py``, found next to the package in a source
checkout) is timed in the same run on the same batch, the two steps
alternating so that a change in the machine's load hits both alike. ``ratio``
is tinymtt / torch: below 1 tinymtt is the faster. On the GPU (``--backend
cupy``) the device is synchronized before every clock reading, and torch runs
on CUDA when its build has it.

GFLOP/s counts the matmul FLOPs of the model's math (``step_flops``) per second;
``matmul_share`` divides that by the rate of one large float32 matmul
measured in the same run on the same backend: how close the step comes to
what the BLAS (or the GPU) can do at best.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import time
from pathlib import Path

import numpy

from .. import backend as tinymtt_backend
from ..config import ModelConfig, TaskSpec
from ..model import MultiTaskTransformer
from ..optim import AdamW
from ..validation import check_integer
from .common import Command
from .profiling import format_profile, profile

CONFIGS = {
    "small": dict(vocab_size=16, seq_len=32, d_model=128, num_heads=4, num_layers=2, d_ff=512,
                  batch_size=64, num_tasks=3),
    "medium": dict(vocab_size=64, seq_len=64, d_model=256, num_heads=8, num_layers=4, d_ff=1024,
                   batch_size=32, num_tasks=3),
    "tiny": dict(vocab_size=8, seq_len=8, d_model=16, num_heads=2, num_layers=1, d_ff=32,   # for the tests
                 batch_size=4, num_tasks=3),
}
PUBLIC_CONFIGS = ("small", "medium")
PEER_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "torch_peer.py"
LEARNING_RATE, WEIGHT_DECAY = 1e-3, 0.01
MATMUL_SIZE = 2048   # the reference matmul: (2048×2048)·(2048×2048) in float32


def step_flops(settings) -> int:
    """Matmul FLOPs of one training step (forward + backward), counted analytically.

    An (m×k)·(k×n) matmul costs 2·m·n·k FLOPs. With N = B·S rows, each of the L blocks has
        Q, K, V, O projections    4 · 2·N·D·D
        Q·Kᵀ and A·V              2 · 2·B·S·S·D      (H heads of width Dh: H·Dh = D)
        FFN D→F→D                 2 · 2·N·D·F
    plus the task encoder 2·B·T·D and each example's own head 2·N·D·V.
    Backward does two matmuls per forward one (dX and dW; dQ and dK; dA and dV),
    so a step is 3 × the forward. Element-wise work is not counted.
    """
    s = settings
    rows = s["batch_size"] * s["seq_len"]
    d = s["d_model"]
    block = 8 * rows * d * d + 4 * s["batch_size"] * s["seq_len"] ** 2 * d + 4 * rows * d * s["d_ff"]
    forward = s["num_layers"] * block + 2 * s["batch_size"] * s["num_tasks"] * d + 2 * rows * d * s["vocab_size"]
    return 3 * forward


def host_batch(settings, seed=0) -> dict:
    """Random tokens, a full mask, task ids cycling over the tasks; targets (T, B, S)."""
    s = settings
    rng = numpy.random.default_rng(seed)
    shape = (s["batch_size"], s["seq_len"])
    return {"inputs": rng.integers(0, s["vocab_size"], shape),
            "mask": numpy.ones(shape, dtype=bool),
            "task_ids": numpy.arange(s["batch_size"]) % s["num_tasks"],
            "targets": rng.integers(0, s["vocab_size"], (s["num_tasks"],) + shape)}


def build_tinymtt(settings, batch, seed=0):
    """The tinymtt model, its AdamW, and ``step()`` on the current backend."""
    s = settings
    tasks = [TaskSpec(f"task{i}", "token", s["vocab_size"]) for i in range(s["num_tasks"])]
    config = ModelConfig(tasks=tasks, vocab_size=s["vocab_size"], max_len=s["seq_len"], d_model=s["d_model"],
                         num_heads=s["num_heads"], d_ff=s["d_ff"], num_layers=s["num_layers"], dropout=0.0,
                         mode="conditioned", norm_first=True, activation="gelu", task_hidden=None, seed=seed,
                         dtype="float32")
    model = MultiTaskTransformer(config)
    move = tinymtt_backend.to_device
    device_batch = {"inputs": move(batch["inputs"]), "mask": move(batch["mask"]), "task_ids": move(batch["task_ids"]),
                    "targets": {t.name: move(batch["targets"][i]) for i, t in enumerate(tasks)}}
    optimizer = AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    grads = model.gradients()   # the same arrays every step: zero_grad and backward work in place

    def step():
        model.zero_grad()
        loss = model.loss(device_batch).total
        model.backward()
        optimizer.step(grads)
        return loss

    return step, model, optimizer


def synchronizer(xp):
    """A function that waits for the device to finish (a no-op on the CPU)."""
    if xp is numpy:
        return lambda: None
    return xp.cuda.Device().synchronize


def median_ms(runners, repeats, warmup) -> dict:
    """Median wall time (ms) of one call of each runner, timed in turn.

    runners: {name: (step, synchronize)}. The runners alternate call by call,
    so a change in the machine's load during the run hits them alike.
    """
    for step, synchronize in runners.values():
        for _ in range(warmup):
            step()
        synchronize()
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, (step, synchronize) in runners.items():
            start = time.perf_counter()
            step()
            synchronize()   # a GPU runs asynchronously: wait before reading the clock
            times[name].append(time.perf_counter() - start)
    return {name: 1000.0 * statistics.median(values) for name, values in times.items()}


def matmul_gflops(xp, size=2048, repeats=5) -> float:
    """GFLOP/s of one float32 (size×size)·(size×size) matmul on this backend (median of ``repeats``)."""
    rng = numpy.random.default_rng(0)
    a, b = (xp.asarray(rng.standard_normal((size, size), dtype=numpy.float32)) for _ in range(2))
    ms = median_ms({"matmul": (lambda: a @ b, synchronizer(xp))}, repeats, warmup=1)["matmul"]
    return 2 * size ** 3 / (ms * 1e-3) / 1e9


def load_peer():
    """(the torch peer module, None), or (None, why it cannot run)."""
    if importlib.util.find_spec("torch") is None:
        return None, "torch is not installed (pip install 'tinymtt[oracle]')"
    if not PEER_PATH.is_file():
        return None, f"{PEER_PATH} not found: the torch peer ships with the source checkout, not the package"
    spec = importlib.util.spec_from_file_location("tinymtt_torch_peer", PEER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, None


def _peer_device(peer, backend_name):
    if backend_name == "numpy":
        return "cpu", None
    if peer.cuda_available():
        return "cuda", None
    return None, "this torch has no CUDA: torch is timed on the GPU only"


def run_benchmark(configs=PUBLIC_CONFIGS, backend="numpy", repeats=7, warmup=2, with_torch=True,
                  matmul_size=None) -> dict:
    """Time a training step of every config; returns the dict that ``--json`` prints.

    configs: names in CONFIGS; backend: "numpy" or "cupy"; repeats timed steps
    (the median is reported) after ``warmup`` untimed ones; with_torch: time the
    PyTorch peer too when it can run (otherwise its fields are None and
    ``torch_note`` says why); matmul_size: the reference matmul (default MATMUL_SIZE).
    """
    matmul_size = MATMUL_SIZE if matmul_size is None else matmul_size
    unknown = [name for name in configs if name not in CONFIGS]
    if unknown:
        raise ValueError(f"configs must be among {sorted(CONFIGS)}, got {unknown}")
    repeats, warmup = check_integer(repeats, "repeats", 1), check_integer(warmup, "warmup")
    peer, torch_note, device, peer_info = None, "not requested", None, None
    if with_torch:
        peer, torch_note = load_peer()
        if peer is not None:
            device, torch_note = _peer_device(peer, backend)
    with tinymtt_backend.use(backend):
        xp = tinymtt_backend.get_array_module()
        rate = matmul_gflops(xp, matmul_size)
        rows = []
        for name in configs:
            settings = CONFIGS[name]
            batch = host_batch(settings)
            runners = {"tinymtt": (build_tinymtt(settings, batch)[0], synchronizer(xp))}
            if device is not None:
                peer_step, peer_sync, peer_info = peer.make_step(settings, batch, device=device)
                runners["torch"] = (peer_step, peer_sync)
            times = median_ms(runners, repeats, warmup)
            ours, theirs = times["tinymtt"], times.get("torch")
            gflops = step_flops(settings) / (ours * 1e-3) / 1e9
            rows.append({"config": name, "tinymtt_ms": ours, "torch_ms": theirs,
                         "ratio": ours / theirs if theirs else None, "gflops": gflops,
                         "matmul_share": gflops / rate, "step_gflop": step_flops(settings) / 1e9,
                         "torch_gflops": step_flops(settings) / (theirs * 1e-3) / 1e9 if theirs else None})
    return {"backend": backend, "dtype": "float32", "repeats": repeats, "warmup": warmup,
            "matmul_gflops": rate, "matmul_size": matmul_size, "numpy": numpy.__version__,
            "torch": peer_info, "torch_note": torch_note if peer_info is None else None, "configs": rows}


def _number(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(result) -> str:
    torch = result["torch"]
    peer = (f"torch {torch['version']} on {torch['device']} ({torch['threads']} threads)" if torch
            else f"torch: none ({result['torch_note']})")
    lines = [f"tinymtt bench -- backend {result['backend']}, float32, median of {result['repeats']} steps "
             f"after {result['warmup']} warm-up; matmul {result['matmul_size']}³: "
             f"{result['matmul_gflops']:.1f} GFLOP/s; {peer}",
             f"{'config':<8}{'tinymtt ms':>12}{'torch ms':>10}{'ratio':>8}{'GFLOP/s':>9}{'torch GFLOP/s':>15}"
             f"{'matmul share':>14}"]
    for row in result["configs"]:
        lines.append(f"{row['config']:<8}{row['tinymtt_ms']:>12.1f}{_number(row['torch_ms'], 1):>10}"
                     f"{_number(row['ratio'], 2):>8}{row['gflops']:>9.1f}{_number(row['torch_gflops'], 1):>15}"
                     f"{row['matmul_share']:>14.2f}")
    return "\n".join(lines)


def profile_step(config_name, backend="numpy", steps=5, warmup=2) -> dict:
    """Self time per op category and per function of one training step of a config (tinymtt.commands.profiling)."""
    settings = CONFIGS[config_name]
    with tinymtt_backend.use(backend):
        synchronize = synchronizer(tinymtt_backend.get_array_module())
        step, model, optimizer = build_tinymtt(settings, host_batch(settings))
        return profile(step, synchronize, steps, warmup, patches=[(optimizer, "step", "optimizer", "AdamW.step"),
                                                                   (model, "zero_grad", "other", "zero_grad")])


def add_arguments(parser):
    parser.add_argument("--config", choices=("small", "medium", "all", "tiny"), default="all",
                        metavar="{small,medium,all}", help="which model size (default: all)")
    parser.add_argument("--backend", choices=tinymtt_backend.BACKENDS, default="numpy")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps; the median is reported")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    parser.add_argument("--profile", action="store_true", help="also profile the step: time by op category")


def run(args) -> int:
    configs = PUBLIC_CONFIGS if args.config == "all" else (args.config,)
    result = run_benchmark(configs, args.backend, args.repeats, args.warmup, with_torch=not args.no_torch)
    if args.profile:
        result["profiles"] = {name: profile_step(name, args.backend, steps=args.repeats, warmup=args.warmup)
                              for name in configs}
    if args.json:
        print(json.dumps(result))
        return 0
    print(format_table(result))
    for name, profiled in result.get("profiles", {}).items():
        print(f"\nprofile of one step, config {name} ({args.backend}; mean of {args.repeats} steps):")
        print(format_profile(profiled))
    return 0


COMMAND = Command("bench", "time one training step beside PyTorch", add_arguments, run,
                  description=__doc__.split("\n\n")[0])
