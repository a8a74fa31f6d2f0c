"""The training-step benchmark: tinymtt beside its PyTorch peer, each alone in its own process.

    tinymtt bench [--config small|medium|all] [--rounds N] [--backend numpy|cupy] [--json] [--profile]

One step = zero_grad, loss, backward, AdamW.step of a conditioned-mode
MultiTaskTransformer (3 token tasks, pre-LN, GELU, dropout 0, float32) on a
fixed batch of random tokens. When torch is installed, the same model in
PyTorch eager (``benchmarks/torch_peer.py``, found next to the package in a
source checkout) is timed on the same batch.

The method, as an outsider would measure: every measurement is a fresh
interpreter (``python -m tinymtt.commands.timing``) that builds one peer,
takes ``warmup`` untimed steps and times ``repeats`` steps; its median is that
round's time. The peers alternate, round after round (tinymtt, torch,
tinymtt, torch, ...), so a change in the machine's load hits both alike, and
neither ever shares a process, a core's spinning thread pool or a cache with
the other. Each peer's time is the median of its round medians; the spread is
the lowest and highest round median. ``ratio`` is tinymtt / torch (below 1
tinymtt is the faster), with the spread of the per-round ratios.

The limit: ``step_flops`` counts the matmul FLOPs of the model's math, and a
large float32 matmul (MATMUL_SIZE³), timed in its own process in every round,
gives the best rate the BLAS (or the GPU) reaches. ``limit_ms`` is the step's
FLOPs at that rate, the time a step would take if it were nothing but large
matmuls; ``limit_fraction`` = limit_ms / tinymtt_ms. On the GPU
(``--backend cupy``) the device is synchronized before every clock reading,
and torch runs on CUDA when its build has it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy

from .. import backend as tinymtt_backend
from ..validation import check_integer
from .common import BLAS_VARIABLES, Command
from .profiling import format_profile
from .timing import peer_note

CONFIGS = {
    "small": dict(vocab_size=16, seq_len=32, d_model=128, num_heads=4, num_layers=2, d_ff=512,
                  batch_size=64, num_tasks=3),
    "medium": dict(vocab_size=64, seq_len=64, d_model=256, num_heads=8, num_layers=4, d_ff=1024,
                   batch_size=32, num_tasks=3),
    "tiny": dict(vocab_size=8, seq_len=8, d_model=16, num_heads=2, num_layers=1, d_ff=32,   # for the tests
                 batch_size=4, num_tasks=3),
}
PUBLIC_CONFIGS = ("small", "medium")
MATMUL_SIZE = 2048   # the reference matmul: (2048×2048)·(2048×2048) in float32
WORKER = "tinymtt.commands.timing"


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


def run_worker(spec) -> dict:
    """Run one measurement (tinymtt.commands.timing) in a fresh interpreter; its JSON result.

    The child imports this very tinymtt (its folder goes first on PYTHONPATH)
    and inherits the environment, thread settings included. tinymtt's own
    process runs as the command line runs it (tinymtt.cli): BLAS on one thread
    unless the environment says otherwise, tinymtt's threads spreading the
    work over the cores (tinymtt.backend.blockwise). torch and the reference
    matmul keep their libraries' defaults. A child that fails raises
    RuntimeError with the last line it printed.
    """
    package_root = str(Path(__file__).resolve().parents[2])
    environment = dict(os.environ)
    if spec["peer"] in ("tinymtt", "profile"):
        for variable in BLAS_VARIABLES:
            environment.setdefault(variable, "1")   # as one_blas_thread does for every other command
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, environment.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", WORKER, json.dumps(spec)], capture_output=True, text=True,
                          env=environment)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit code {done.returncode}"]
        raise RuntimeError(f"the {spec['peer']} measurement failed: {lines[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _spread(values) -> list:
    return [min(values), max(values)]


def run_benchmark(configs=PUBLIC_CONFIGS, backend="numpy", rounds=3, repeats=7, warmup=2, with_torch=True,
                  matmul_size=None) -> dict:
    """Time a training step of every config, each peer in its own processes; the dict ``--json`` prints.

    configs: names in CONFIGS; backend: "numpy" or "cupy"; rounds: how many
    times each peer is measured, in alternation, each time in a fresh process;
    repeats timed steps per process (their median is the round's time) after
    ``warmup`` untimed ones; with_torch: time the PyTorch peer too when it can
    run (otherwise its fields are None and ``torch_note`` says why);
    matmul_size: the reference matmul (default MATMUL_SIZE).
    """
    matmul_size = MATMUL_SIZE if matmul_size is None else matmul_size
    unknown = [name for name in configs if name not in CONFIGS]
    if unknown:
        raise ValueError(f"configs must be among {sorted(CONFIGS)}, got {unknown}")
    rounds, repeats = check_integer(rounds, "rounds", 1), check_integer(repeats, "repeats", 1)
    warmup = check_integer(warmup, "warmup")
    with tinymtt_backend.use(backend):   # a missing CuPy is one clear error here, before any process starts
        pass
    torch_note = peer_note() if with_torch else "not requested"
    common = {"backend": backend, "repeats": repeats, "warmup": warmup}
    matmul, measured = [], {name: [] for name in configs}   # per round: the matmul; per config: (ours, theirs)
    for _ in range(rounds):
        matmul.append(run_worker({**common, "peer": "matmul", "matmul_size": matmul_size}))
        for name in configs:
            ours = run_worker({**common, "peer": "tinymtt", "settings": CONFIGS[name]})
            theirs = None
            if torch_note is None:
                try:
                    theirs = run_worker({**common, "peer": "torch", "settings": CONFIGS[name]})
                except RuntimeError as error:   # e.g. a torch without CUDA beside --backend cupy
                    torch_note = str(error)
            measured[name].append((ours, theirs))
    rate_ms = [m["median_ms"] for m in matmul]
    rates = [2 * matmul_size ** 3 / (ms * 1e-3) / 1e9 for ms in rate_ms]
    rate = statistics.median(rates)
    rows = [_row(name, measured[name], rate, torch_note is None) for name in configs]
    torch_info = next((theirs["info"] for pairs in measured.values() for _, theirs in pairs if theirs), None)
    return {"backend": backend, "dtype": "float32", "method": "each peer alone in a fresh process, alternating rounds",
            "rounds": rounds, "repeats": repeats, "warmup": warmup, "matmul_gflops": rate,
            "matmul_gflops_spread": _spread(rates), "matmul_size": matmul_size, "numpy": numpy.__version__,
            "torch": torch_info if torch_note is None else None, "torch_note": torch_note, "configs": rows}


def _row(name, pairs, rate, with_torch) -> dict:
    """One config's line: medians of the round medians, their spreads, the limit."""
    settings, flops = CONFIGS[name], step_flops(CONFIGS[name])
    ours = [o["median_ms"] for o, _ in pairs]
    theirs = [t["median_ms"] for _, t in pairs] if with_torch else None
    tinymtt_ms = statistics.median(ours)
    torch_ms = statistics.median(theirs) if theirs else None
    limit_ms = 1000.0 * flops / (rate * 1e9)
    return {"config": name, "settings": settings, "tinymtt_ms": tinymtt_ms, "tinymtt_spread_ms": _spread(ours),
            "torch_ms": torch_ms, "torch_spread_ms": _spread(theirs) if theirs else None,
            "ratio": tinymtt_ms / torch_ms if torch_ms else None,
            "ratio_spread": _spread([o / t for o, t in zip(ours, theirs)]) if theirs else None,
            "step_gflop": flops / 1e9, "gflops": flops / (tinymtt_ms * 1e-3) / 1e9,
            "torch_gflops": flops / (torch_ms * 1e-3) / 1e9 if torch_ms else None,
            "limit_ms": limit_ms, "limit_fraction": limit_ms / tinymtt_ms,
            "processes": [{"tinymtt_pid": o["pid"], "tinymtt_torch_loaded": o["torch_loaded"],
                           "torch_pid": t["pid"] if t else None} for o, t in pairs]}



def _with_spread(value, spread, digits) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f} ({spread[0]:.{digits}f}-{spread[1]:.{digits}f})"


def format_table(result) -> str:
    torch = result["torch"]
    peer = (f"torch {torch['version']} on {torch['device']} ({torch['threads']} threads)" if torch
            else f"torch: none ({result['torch_note']})")
    lines = [f"tinymtt bench -- backend {result['backend']}, float32; each peer alone in a fresh process, "
             f"{result['rounds']} alternating rounds of {result['repeats']} steps after {result['warmup']} warm-up",
             f"median of the round medians (lowest-highest); {peer}; "
             f"matmul {result['matmul_size']}³: {result['matmul_gflops']:.1f} GFLOP/s",
             f"{'config':<8}{'tinymtt ms':>22}{'torch ms':>22}{'ratio':>18}{'limit ms':>10}{'of limit':>10}"]
    for row in result["configs"]:
        lines.append(f"{row['config']:<8}{_with_spread(row['tinymtt_ms'], row['tinymtt_spread_ms'], 1):>22}"
                     f"{_with_spread(row['torch_ms'], row['torch_spread_ms'], 1):>22}"
                     f"{_with_spread(row['ratio'], row['ratio_spread'], 2):>18}"
                     f"{row['limit_ms']:>10.1f}{row['limit_fraction']:>10.0%}")
    return "\n".join(lines)


def profile_step(config_name, backend="numpy", steps=5, warmup=2) -> dict:
    """Self time per op category and per function of one training step of a config
    (tinymtt.commands.profiling), measured in a fresh process set up as tinymtt's own bench process."""
    measured = run_worker({"peer": "profile", "settings": CONFIGS[config_name], "backend": backend,
                           "repeats": steps, "warmup": warmup})
    return measured["profile"]


def add_arguments(parser):
    parser.add_argument("--config", choices=("small", "medium", "all", "tiny"), default="all",
                        metavar="{small,medium,all}", help="which model size (default: all)")
    parser.add_argument("--backend", choices=tinymtt_backend.BACKENDS, default="numpy")
    parser.add_argument("--rounds", type=int, default=3,
                        help="fresh processes per peer, alternating (default: 3)")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per process; their median is the round's")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first, in every process")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    parser.add_argument("--profile", action="store_true", help="also profile the step: time by op category")


def run(args) -> int:
    configs = PUBLIC_CONFIGS if args.config == "all" else (args.config,)
    result = run_benchmark(configs, args.backend, args.rounds, args.repeats, args.warmup,
                           with_torch=not args.no_torch)
    if args.profile:
        result["profiles"] = {name: profile_step(name, args.backend, steps=args.repeats, warmup=args.warmup)
                              for name in configs}
    if args.json:
        print(json.dumps(result))
        return 0
    print(format_table(result))
    for name, profiled in result.get("profiles", {}).items():
        print(f"\nprofile of one step, config {name} ({args.backend}; mean of {args.repeats} steps, "
                  f"in its own process):")
        print(format_profile(profiled))
    return 0


COMMAND = Command("bench", "time one training step beside PyTorch", add_arguments, run,
                  description=__doc__.split("\n\n")[0])
