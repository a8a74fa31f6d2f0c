"""``tinymtt compare --architectures``: what each way of sharing costs, and what it gives.

Every architecture trains on the same tasks, seeds and steps (``ARCHITECTURES``):

    conditioned       one encoder, the task vector added to the input
    joint             the whole encoder once per task stream, then task attention
    joint-branch1     joint, with only the last block per stream (--branch-layers 1)
    task-norm         conditioned + LayerNorm γ, β from a task embedding in every block
    lora              conditioned + per-task rank-r updates of the attention projections
    mmoe              conditioned + E shared expert FFNs and a per-task gate in every block
    single-task       one model per task (the baseline of Δ%)

Same budget (as in ``tinymtt compare``): every architecture sees the same
number of labelled examples of each task per step. A conditioned batch of B
examples holds about B/T of each task; a joint batch holds B/T examples, each
with every target, and so does each single-task baseline's batch. The cost
columns then compare the architectures at equal labels:

* ``params_shared``: parameters every task uses; ``params_per_task``: the
  parameters that belong to one task (its head, its row of the task encoder,
  its rows of the task-module tables), averaged over the tasks. For the
  baselines, shared is 0 and per task is one whole single-task model.
* ``gflop_per_step``: the matmul FLOPs of one training step (``step_flops``),
  counted analytically at the data's longest sequence (batches are padded to
  their longest example, so this is an upper bound); the baselines' row is the
  sum of their T models.
* ``ms_per_step``: the measured mean of the training steps (the baselines: their sum).

The metrics and Δ% are those of ``tinymtt compare`` (tinymtt.commands.compare).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict

import numpy

from .. import backend
from ..config import ModelConfig
from ..metrics import evaluate
from ..model import MultiTaskTransformer
from ..train import StepTimer, TrainConfig, Trainer
from .common import text_table
from .scoring import PRIMARY, load_splits, relative_gain

# name -> the ModelConfig fields that make it (beside the shared sizes)
ARCHITECTURES = {
    "conditioned": {"mode": "conditioned"},
    "joint": {"mode": "joint"},
    "joint-branch1": {"mode": "joint", "branch_layers": 1},
    "task-norm": {"mode": "conditioned", "task_module": "task-norm"},
    "lora": {"mode": "conditioned", "task_module": "lora"},
    "mmoe": {"mode": "conditioned", "task_module": "mmoe"},
}
# per-task tables: parameters whose first axis is the task (their rows belong to one task each)
TASK_TABLES = ("task_embedding", "lora_a", "lora_b", "gate_weight", "gate_bias")


# -- cost ---------------------------------------------------------------------------------------
def _block_flops(c: ModelConfig, sequences, seq_len, task_module) -> int:
    """Forward matmul FLOPs of one block on ``sequences`` sequences of ``seq_len`` positions."""
    rows, d = sequences * seq_len, c.d_model
    flops = 8 * rows * d * d + 4 * sequences * seq_len ** 2 * d           # Q, K, V, O; QKᵀ and A·V
    ffn = 4 * rows * d * c.d_ff                                             # D→F→D
    if task_module == "mmoe":
        return flops + c.num_experts * ffn + 2 * rows * d * c.num_experts  # E experts, the gate logits
    flops += ffn
    if task_module == "lora":
        flops += 4 * (2 * rows * d * c.lora_rank + 2 * rows * c.lora_rank * d)   # x·A_t, then ·B_t, 4 projections
        if c.lora_ffn:                                                     # D→F and F→D
            flops += 2 * (2 * rows * d * c.lora_rank + 2 * rows * c.lora_rank * c.d_ff)
    if task_module == "task-norm":
        flops += 2 * 2 * (2 * sequences * c.norm_embed_dim * d)            # 2 norms × (e·W_γ, e·W_β), per sequence
    return flops


def step_flops(c: ModelConfig, batch_size, seq_len) -> int:
    """Matmul FLOPs of one training step (forward + backward) of the model ``c`` on a (B, S) batch.

    An (m×k)·(k×n) matmul costs 2·m·n·k; backward does two matmuls per forward
    one (dX and dW), so a step is 3 × the forward, as in tinymtt.commands.bench.
    Forward, with N = B·S:
        input          2·N·K·D for continuous inputs (a token embedding is a lookup)
        task encoder   2·B·T·D (conditioned: one-hot rows) or 2·T·T·D (joint: one row per task)
        blocks         _block_flops: 8·N·D² + 4·B·S²·D + 4·N·D·F, plus the task module's matmuls;
                       joint: the L − K trunk blocks on B sequences, the K branch blocks on B·T
        task attention (joint) 8·N·T·D² + 4·N·T²·D  (N positions, each a sequence of T task tokens)
        heads          every head on every example (the model computes them all):
                       2·N·D·C (token), 2·B·D·C (sequence, after pooling), 2·B·D·K (regression)
    Element-wise work (softmax, norms, GELU) is not counted.
    """
    b, s, d, t = batch_size, seq_len, c.d_model, c.num_tasks
    forward = 0 if c.vocab_size is not None else 2 * b * s * c.input_dim * d
    if c.mode == "conditioned":
        forward += 2 * b * t * d + c.num_layers * _block_flops(c, b, s, c.task_module)
    else:
        trunk = c.trunk_layers
        forward += 2 * t * t * d + trunk * _block_flops(c, b, s, "none")
        forward += (c.num_layers - trunk) * _block_flops(c, b * t, s, c.task_module)
        forward += 8 * b * s * t * d * d + 4 * b * s * t * t * d
    for task in c.tasks:
        forward += 2 * (b * s if task.kind == "token" else b) * d * task.num_outputs
    return 3 * forward


def parameter_split(model: MultiTaskTransformer) -> tuple:
    """(shared, per task): the parameters every task uses, and one task's own (mean over the tasks)."""
    c, own = model.config, 0
    first_task_layer = "task_encoder.hidden.weight" if c.task_hidden else "task_encoder.out.weight"
    for name, value in model.parameters().items():
        if name.startswith("heads.") or name == first_task_layer or name.rsplit(".", 1)[-1] in TASK_TABLES:
            own += int(value.size)
    return model.num_parameters() - own, own / c.num_tasks


# -- running ------------------------------------------------------------------------------------
def _train(train_set, test_set, config, seed, batch_size, **model_options) -> dict:
    model_config = ModelConfig(**train_set.model_config_kwargs(), d_model=config.d_model, num_heads=config.num_heads,
                               num_layers=config.num_layers, d_ff=config.d_ff, seed=seed, **model_options)
    model = MultiTaskTransformer(model_config)
    train_config = TrainConfig(steps=config.steps, batch_size=batch_size, lr=config.lr,
                               warmup_steps=config.steps // 10, seed=seed, log_every=config.steps)
    timer = StepTimer()
    Trainer(model, train_set, None, train_config, progress=False, callbacks=[timer]).fit()
    metrics = evaluate(model, test_set)
    shared, per_task = parameter_split(model)
    return {"metrics": {t.name: metrics[t.name][PRIMARY[t.kind][0]] for t in model_config.tasks},
            "ms_per_step": 1000.0 * timer.seconds / config.steps, "params_shared": shared,
            "params_per_task": per_task,
            "gflop_per_step": step_flops(model_config, batch_size, int(train_set.lengths.max())) / 1e9}


def _summary(values):
    values = numpy.asarray(values, dtype=numpy.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            "values": values.tolist()}


def compare_architectures(config, names=tuple(ARCHITECTURES), log=None) -> dict:
    """Train every architecture and the single-task baselines over ``config.seeds`` seeds; the JSON results.

    config: a tinymtt.commands.compare.CompareConfig (data, tasks, seeds, steps, sizes, batch size).
    Returns {"config", "backend", "data", "tasks", "budget", "rows": [row, ...], "seconds"}; a row is
    {"name", "params_shared", "params_per_task", "gflop_per_step", "ms_per_step",
     "metrics": {task: {mean, std, values}}, "delta": {"value", "std", "per_seed", "per_task"} or None}.
    """
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    train_set, test_set = load_splits(config)
    tasks, seeds = train_set.tasks, list(range(config.seeds))
    per_task_batch = max(config.batch_size // len(tasks), 1)
    lower = {t.name: PRIMARY[t.kind][1] for t in tasks}
    jobs = [(name, seed) for seed in seeds for name in names] + [("single-task", seed) for seed in seeds]
    runs, started = {}, time.perf_counter()
    for number, (name, seed) in enumerate(jobs, 1):
        if name == "single-task":
            alone = [_train(train_set.select_tasks([t.name]), test_set.select_tasks([t.name]), config, seed,
                            per_task_batch) for t in tasks]
            result = {"metrics": {t.name: r["metrics"][t.name] for t, r in zip(tasks, alone)},
                      "ms_per_step": sum(r["ms_per_step"] for r in alone), "params_shared": 0,
                      "params_per_task": float(numpy.mean([r["params_shared"] + r["params_per_task"] for r in alone])),
                      "gflop_per_step": sum(r["gflop_per_step"] for r in alone)}
        else:
            options = ARCHITECTURES[name]
            batch = per_task_batch if options["mode"] == "joint" else config.batch_size
            result = _train(train_set, test_set, config, seed, batch, **options)
        runs[(name, seed)] = result
        log(f"[{number}/{len(jobs)}] {name} seed {seed}: {result['ms_per_step']:.1f} ms/step, "
            + ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items()))
    base = {t.name: [runs[("single-task", s)]["metrics"][t.name] for s in seeds] for t in tasks}
    base_mean = {task: float(numpy.mean(values)) for task, values in base.items()}
    rows = []
    for name in list(names) + ["single-task"]:
        per_seed = [runs[(name, s)] for s in seeds]
        row = {"name": name, "params_shared": int(per_seed[0]["params_shared"]),
               "params_per_task": float(per_seed[0]["params_per_task"]),
               "gflop_per_step": float(per_seed[0]["gflop_per_step"]),
               "ms_per_step": float(numpy.mean([r["ms_per_step"] for r in per_seed])),
               "metrics": {t.name: _summary([r["metrics"][t.name] for r in per_seed]) for t in tasks}}
        means = {task: row["metrics"][task]["mean"] for task in base_mean}
        seedwise = [relative_gain(r["metrics"], {task: base[task][i] for task in base}, lower)
                    for i, r in enumerate(per_seed)]
        row["delta"] = {"value": relative_gain(means, base_mean, lower), "std": _summary(seedwise)["std"],
                        "per_seed": seedwise,
                        "per_task": {task: relative_gain({task: means[task]}, {task: base_mean[task]}, lower)
                                     for task in base_mean}}
        rows.append(row)
    return {"config": asdict(config), "backend": backend.get_backend(), "data": train_set.name,
            "tasks": [{"name": t.name, "kind": t.kind, "metric": PRIMARY[t.kind][0],
                       "lower_is_better": lower[t.name]} for t in tasks],
            "budget": {"conditioned_batch": config.batch_size, "joint_batch": per_task_batch,
                       "single_task_batch": per_task_batch, "seq_len": int(train_set.lengths.max())},
            "test_examples": len(test_set), "rows": rows, "seconds": time.perf_counter() - started}


def format_architectures(results: dict) -> str:
    """The results as one text table: cost columns, then each task's metric and Δ%."""
    c, tasks = results["config"], results["tasks"]
    arrows = {True: "↓", False: "↑"}
    header = (["architecture", "shared params", "params/task", "MFLOP/step", "ms/step"]
              + [f"{t['name']} {t['metric']} {arrows[t['lower_is_better']]}" for t in tasks] + ["Δ% vs single"])
    table = []
    for row in results["rows"]:
        cells = [row["name"], f"{row['params_shared']:,}", f"{row['params_per_task']:,.0f}",
                 f"{1000 * row['gflop_per_step']:.1f}", f"{row['ms_per_step']:.1f}"]
        for t in tasks:
            m, fmt = row["metrics"][t["name"]], ".5f" if t["lower_is_better"] else ".3f"
            cells.append(f"{m['mean']:{fmt}} ± {m['std']:{fmt}}")
        delta = row["delta"]
        cells.append("0 (baseline)" if row["name"] == "single-task" else
                     f"{delta['value']:+.1f}% ± {delta['std']:.1f}" if delta["value"] == delta["value"] else "n/a")
        table.append(cells)
    budget = results["budget"]
    title = (f"{results['data']} ({', '.join(t['name'] for t in tasks)}), {c['seeds']} seed(s) x {c['steps']} steps, "
             f"d_model {c['d_model']}, {c['num_layers']} layers, d_ff {c['d_ff']}; batches: conditioned "
             f"{budget['conditioned_batch']}, joint and single-task {budget['joint_batch']} (the same labels of each "
             f"task per step); test set of {results['test_examples']}; {results['backend']}; "
             f"{results['seconds']:.0f} s in all")
    notes = ("mean ± std over seeds. params/task: one task's own parameters (head, task-encoder row, task-module "
             "rows); single-task: one whole model.\nMFLOP/step: matmul FLOPs of a training step at the longest "
             f"sequence (S = {budget['seq_len']}), counted analytically; single-task: the sum of the T models. "
             "Δ%: the mean relative change vs single-task (+ = better).")
    return "\n".join([title, "", text_table(header, table), "", notes])
