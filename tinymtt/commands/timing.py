"""What one process of ``tinymtt bench`` does: build one peer, time its steps, print the times.

    python -m tinymtt.commands.timing '{"peer": "tinymtt", "settings": {...}, "repeats": 7, ...}'

The benchmark starts a fresh interpreter for every measurement (tinymtt.commands.bench),
so each peer has the cores and its own thread pools to itself: an idle BLAS or
OpenMP pool of one library never spins on the cores the other needs. ``peer``
is one of

* ``"tinymtt"``: a training step of tinymtt's model (``build_tinymtt``);
* ``"torch"``: the same step of the PyTorch peer, ``benchmarks/torch_peer.py``;
* ``"matmul"``: one large float32 matmul, whose FLOP rate sets the GEMM-bound limit;
* ``"profile"``: tinymtt's step again, timed op by op (tinymtt.commands.profiling).

The process prints one JSON line: the step times in ms, the median, its pid and
whether torch was loaded in it (so a test can see that the peers never share a process).
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy

from .. import backend as tinymtt_backend
from ..config import ModelConfig, TaskSpec
from ..model import MultiTaskTransformer
from ..optim import AdamW
from .profiling import profile

PEER_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "torch_peer.py"
PEERS = ("tinymtt", "torch", "matmul", "profile")
LEARNING_RATE, WEIGHT_DECAY = 1e-3, 0.01


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


def step_times_ms(step, synchronize, repeats, warmup) -> list:
    """Wall time (ms) of each of ``repeats`` calls of ``step``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize()   # a GPU runs asynchronously: wait before reading the clock
        times.append(1000.0 * (time.perf_counter() - start))
    return times


def peer_note():
    """None when the torch peer can run here, else why not (without importing torch)."""
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (pip install 'tinymtt[oracle]')"
    if not PEER_PATH.is_file():
        return f"{PEER_PATH} not found: the torch peer ships with the source checkout, not the package"
    return None


def load_peer():
    """(the torch peer module, None), or (None, why it cannot run)."""
    note = peer_note()
    if note is not None:
        return None, note
    spec = importlib.util.spec_from_file_location("tinymtt_torch_peer", PEER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, None


def measure(spec) -> dict:
    """One measurement, in this process: the spec's peer, timed. See the module docstring.

    spec: {"peer", "backend", "repeats", "warmup", and "settings" (a model
    config of tinymtt.commands.bench.CONFIGS) or "matmul_size"}
    """
    peer, backend_name = spec["peer"], spec.get("backend", "numpy")
    if peer not in PEERS:
        raise ValueError(f"peer must be one of {PEERS}, got {peer!r}")
    info = None
    with tinymtt_backend.use(backend_name):
        xp = tinymtt_backend.get_array_module()
        synchronize = synchronizer(xp)
        if peer == "matmul":
            size = spec["matmul_size"]
            rng = numpy.random.default_rng(0)
            a, b = (xp.asarray(rng.standard_normal((size, size), dtype=numpy.float32)) for _ in range(2))
            step = lambda: a @ b
        elif peer in ("tinymtt", "profile"):
            step, model, optimizer = build_tinymtt(spec["settings"], host_batch(spec["settings"]))
            if peer == "profile":
                patches = [(optimizer, "step", "optimizer", "AdamW.step"), (model, "zero_grad", "other", "zero_grad")]
                return {"peer": peer, "profile": profile(step, synchronize, spec["repeats"], spec["warmup"], patches),
                        "pid": os.getpid()}
        else:
            module, note = load_peer()
            if module is None:
                raise RuntimeError(note)
            device = "cpu" if backend_name == "numpy" else "cuda"
            if device == "cuda" and not module.cuda_available():
                raise RuntimeError("this torch has no CUDA: beside --backend cupy, torch is timed on the GPU only")
            step, synchronize, info = module.make_step(spec["settings"], host_batch(spec["settings"]), device=device)
        times = step_times_ms(step, synchronize, spec["repeats"], spec["warmup"])
    return {"peer": peer, "times_ms": times, "median_ms": statistics.median(times), "pid": os.getpid(),
            "torch_loaded": "torch" in sys.modules, "info": info}


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
