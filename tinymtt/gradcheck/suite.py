"""Check every hand-written gradient in tinymtt, in a few seconds: ops, layers, the model.

    from tinymtt.gradcheck.suite import run_checks, format_table
    print(format_table(run_checks()))          # the `tinymtt gradcheck` command

Three groups, from small to large (all in float64, on the current backend):

* **op**: every ``*_forward``/``*_backward`` pair in ``tinymtt.ops``, through
  ``check_op`` -- finite differences of ``sum(out · g)`` for every
  element of every input, with a random upstream g;
* **layer**: every layer in ``tinymtt.nn``, through ``directional_check`` and
  ``coordinate_check`` of ``sum(out · g)`` over the layer's input and all its
  parameters;
* **model**: a small MultiTaskTransformer in both modes (conditioned, joint),
  with every task module (task-norm, lora, mmoe) in both modes and joint mode
  with one branch layer, the same two checks on its weighted loss.

Ops, layers and the model are looked up in their modules when a check runs,
so a bug planted in ``tinymtt.ops.softmax_backward`` shows in the softmax row.
An op in ``tinymtt.ops`` without an entry in ``_OP_CASES`` gets a FAIL row:
a new op cannot ship unchecked.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy

from .. import backend, model, nn, ops
from ..config import ModelConfig
from .checks import check_op
from .numeric import MODEL_TOLERANCE, STEP, THRESHOLDS, TOLERANCE
from .whole_model import coordinate_check, directional_check

F64 = "float64"
LAYER_TOLERANCE = MODEL_TOLERANCE   # a layer chains several ops: the whole-model threshold
LINEAR_STEP = 1e-3   # an output linear in its input has no truncation error: a large h, less rounding


class CheckRow(NamedTuple):
    """One line of the table; ``detail`` says what failed and why ("" when it passed)."""
    group: str        # "op" | "layer" | "model"
    name: str
    worst: float      # worst relative error (inf: a gradient missing or NaN)
    tolerance: float
    passed: bool
    seconds: float
    detail: str = ""


# --- inputs -------------------------------------------------------------------

class _Draw:
    """Seeded float64 arrays and masks on the current backend."""

    def __init__(self, seed):
        self.rng = numpy.random.default_rng(seed)

    def normal(self, *shape, scale=1.0):
        return backend.to_device(scale * self.rng.standard_normal(shape), dtype=F64)

    def away_from_zero(self, *shape):
        """|x| >= 0.1: no element within the step h of the ReLU kink."""
        n = self.rng.standard_normal(shape)
        return backend.to_device(numpy.sign(n) * (0.1 + numpy.abs(n)), dtype=F64)

    def ints(self, high, *shape):
        return backend.to_device(self.rng.integers(0, high, shape))

    def lengths_mask(self, lengths, seq_len):
        """(B, S) bool: the first lengths[b] positions of example b are real."""
        return backend.to_device(numpy.arange(seq_len)[None, :] < numpy.asarray(lengths)[:, None])


# --- ops ------------------------------------------------------------------------

class _OpCase(NamedTuple):
    inputs: dict
    wrt: list | None = None
    kwargs: dict | None = None
    h: float = STEP
    forward: object = None   # None: ops.<name>_forward


def _attention_case(draw, seed):
    real = numpy.arange(3)[None, :] < numpy.array([3, 2])[:, None]   # (B, Sk): example 1 has 2 real keys
    mask = numpy.repeat(real[:, None, None, :], 3, axis=2)           # (B, 1, Sq, Sk)
    mask[1, 0, 2, :] = False                                         # one query row sees no key at all
    return _OpCase({"q": draw.normal(2, 2, 3, 4), "k": draw.normal(2, 2, 3, 4), "v": draw.normal(2, 2, 3, 4)},
                   kwargs={"mask": backend.to_device(mask)})


def _dropout_case(draw, seed):
    def forward(x):   # a fresh generator per call: the same mask for every finite difference
        return ops.dropout_forward(x, 0.5, backend.device_rng(seed), True)
    return _OpCase({"x": draw.normal(3, 4)}, forward=forward)


_OP_CASES = {
    "linear": lambda d, s: _OpCase({"x": d.normal(2, 3, 4), "w": d.normal(4, 5), "b": d.normal(5)}, h=LINEAR_STEP),
    "embedding": lambda d, s: _OpCase({"ids": d.ints(4, 2, 5), "table": d.normal(4, 3)}, ["table"], h=LINEAR_STEP),
    "relu": lambda d, s: _OpCase({"x": d.away_from_zero(3, 4)}),
    "gelu": lambda d, s: _OpCase({"x": d.normal(3, 4, scale=2.0)}),
    "dropout": _dropout_case,
    "softmax": lambda d, s: _OpCase({"x": d.normal(2, 3, 4)}),
    "log_softmax": lambda d, s: _OpCase({"x": d.normal(2, 3, 4)}),
    "layernorm": lambda d, s: _OpCase({"x": d.normal(2, 3, 4), "gamma": d.normal(4), "beta": d.normal(4)}),
    "split_heads": lambda d, s: _OpCase({"x": d.normal(2, 3, 4)}, kwargs={"num_heads": 2}, h=LINEAR_STEP),
    "merge_heads": lambda d, s: _OpCase({"x": d.normal(2, 2, 3, 2)}, h=LINEAR_STEP),
    "attention": _attention_case,
    "cross_entropy": lambda d, s: _OpCase({"logits": d.normal(2, 3, 4), "targets": d.ints(4, 2, 3),
                                           "mask": d.lengths_mask([3, 1], 3)}, ["logits"]),
    "mse": lambda d, s: _OpCase({"pred": d.normal(3, 2), "target": d.normal(3, 2),
                                 "mask": backend.to_device(numpy.array([[True], [False], [True]]))}, ["pred"]),
    "weighted_sum": lambda d, s: _OpCase({"losses": d.normal(3) ** 2, "weights": d.normal(3)}),
    "masked_mean": lambda d, s: _OpCase({"x": d.normal(2, 3, 4), "mask": d.lengths_mask([3, 1], 3)},
                                        ["x"], h=LINEAR_STEP),
    # task 1 of 3 twice (its gradient sums), task 2 never (its gradient is 0)
    "task_linear": lambda d, s: _OpCase({"x": d.normal(3, 2, 4), "w": d.normal(3, 4, 5),
                                         "task_ids": backend.to_device(numpy.array([1, 0, 1])), "b": d.normal(3, 5)},
                                        ["x", "w", "b"], h=LINEAR_STEP),
}


def op_names() -> list:
    """Every op of tinymtt.ops (each ``<name>_forward``), in the order they appear there."""
    return [name[:-len("_forward")] for name in vars(ops) if name.endswith("_forward")]


def _check_op(name, seed):
    if name not in _OP_CASES:
        raise LookupError(f"tinymtt.ops.{name}_forward has no self-check: add a case to _OP_CASES "
                          f"in tinymtt/gradcheck/suite.py")
    case = _OP_CASES[name](_Draw(seed), seed)
    forward = case.forward or getattr(ops, f"{name}_forward")
    result = check_op(forward, getattr(ops, f"{name}_backward"), case.inputs, case.wrt, case.kwargs,
                                seed=seed, h=case.h, name=name)
    detail = "" if result.passed else result.report()
    return result.worst, result.passed, detail


# --- layers and the model -----------------------------------------------------

def _randomize(layer, seed, scale=0.3):
    """Move every parameter off its initial value (LayerNorm's γ = 1, β = 0 hide bugs)."""
    rng = numpy.random.default_rng(seed)
    for value in layer.parameters().values():
        value[...] = value + backend.to_device(scale * rng.standard_normal(value.shape), dtype=F64)
    return layer


def _directional_and_coordinates(f, params, grads, seed, tolerance):
    """Both whole-model checks: (worst error over them, both passed, what failed)."""
    ok_directions, directions = directional_check(f, params, grads, num_directions=3, seed=seed,
                                                            tolerance=tolerance)
    ok_coordinates, worst = coordinate_check(f, params, grads, per_param=2, seed=seed,
                                                       tolerance=tolerance)
    errors = [d.error for d in directions] + list(worst.values())
    failed = [f"direction {i}: numeric {d.numeric:.6e}, analytic {d.analytic:.6e}"
              for i, d in enumerate(directions) if not d.error <= tolerance]
    failed += [f"{key}: rel. error {error:.1e} at sampled coordinates" for key, error in worst.items()
               if not error <= tolerance]
    return max(errors, default=0.0), ok_directions and ok_coordinates, "\n".join(failed)


def _check_layer(layer, forward, inputs, seed):
    """f = sum(forward(*inputs) · g) over the float inputs and every parameter of ``layer``.

    layer.backward(g) returns the float inputs' gradients (one array, a tuple, or None).
    """
    xp = backend.get_array_module()
    layer.zero_grad()
    out = forward(*inputs.values())
    g = xp.asarray(numpy.random.default_rng(seed + 1).standard_normal(numpy.shape(out)), dtype=F64)
    returned = layer.backward(g)
    returned = () if returned is None else returned if isinstance(returned, tuple) else (returned,)
    float_inputs = [k for k, v in inputs.items() if v.dtype.kind == "f"]
    if len(returned) != len(float_inputs):
        raise ValueError(f"{type(layer).__name__}.backward returned {len(returned)} gradients for the "
                         f"float inputs {float_inputs}")
    params, grads = dict(layer.parameters()), dict(layer.gradients())
    for key, dx in zip(float_inputs, returned):   # the inputs are checked like parameters
        params[f"input {key}"], grads[f"input {key}"] = inputs[key], dx.copy()
    return _directional_and_coordinates(lambda: xp.sum(forward(*inputs.values()) * g), params, grads,
                                        seed, LAYER_TOLERANCE)


def _layer_cases(seed):
    """(name, thunk) for every layer; each thunk builds the layer and checks it.

    Inputs are drawn here, before anything runs, so ``only`` never changes them.
    """
    draw = _Draw(seed)
    D, H, F, T = 8, 2, 16, 3
    mask = draw.lengths_mask([4, 2], 4)                       # (B, S): example 1 has 2 real tokens
    attend = mask[:, None, None, :]                           # (B, 1, 1, S): over heads and queries
    present = backend.to_device(numpy.array([True, False]))   # example 1 has no target

    def init():
        return backend.init_rng(seed)

    def case(make, inputs, call=lambda layer: layer.forward):
        """make() -> the layer; call(layer) -> the forward function to check."""
        def run():
            layer = make()
            return _check_layer(layer, call(layer), inputs, seed)
        return run

    def randomized(build):
        return lambda: _randomize(build(), seed)

    def masked(layer):
        return lambda x: layer(x, mask=attend)

    def with_loss(targets):
        return lambda head: lambda h: head.loss(head.forward(h, mask), targets, mask, present)

    def one_mask(layer):
        def forward(x):
            layer.calls = 0   # the same mask on every call: finite differences see one function
            return layer(x)
        return forward

    def task_attention():
        layer = _randomize(nn.TaskAttention(D, H, T, init(), dtype=F64), seed, scale=0.1)
        layer.params["gate"][...] = 0.4   # open the gate (γ = 0 at start): the streams mix
        return layer

    def head(kind, targets):
        return case(randomized(lambda: nn.make_head(kind, D, 3, init(), dtype=F64)), {"h": draw.normal(2, 4, D)},
                    with_loss(targets))

    def block(norm_first, module="none", lora_ffn=False):
        task = nn.TaskOptions(module, T, lora_rank=2, num_experts=2, norm_embed_dim=3, lora_ffn=lora_ffn)
        build = randomized(lambda: nn.TransformerBlock(D, H, F, init(), norm_first=norm_first, dtype=F64, task=task))
        if module == "none":
            return case(build, {"x": draw.normal(2, 4, D)}, masked)
        return case(build, {"x": draw.normal(2, 4, D), "tasks": tasks},
                    lambda layer: lambda x, t: layer(x, mask=attend, tasks=t))

    tasks = backend.to_device(numpy.array([2, 2]))           # two examples of task 2; tasks 0, 1 unused
    mixed_tasks = backend.to_device(numpy.array([0, 2, 0]))  # task 0 twice, task 1 unused

    def experts():
        return nn.MixtureOfExperts([nn.FeedForward(D, F, init(), dtype=F64) for _ in range(3)], D, T, dtype=F64)

    return [
        ("Linear", case(randomized(lambda: nn.Linear(4, 5, init(), dtype=F64)), {"x": draw.normal(2, 3, 4)})),
        ("Embedding", case(randomized(lambda: nn.Embedding(5, 4, init(), dtype=F64)), {"ids": draw.ints(5, 2, 6)})),
        ("LayerNorm", case(randomized(lambda: nn.LayerNorm(D, dtype=F64)), {"x": draw.normal(2, 3, D)})),
        ("ReLU", case(nn.ReLU, {"x": draw.away_from_zero(2, 3, 4)})),
        ("GELU", case(nn.GELU, {"x": draw.normal(2, 3, 4, scale=2.0)})),
        ("Dropout", case(lambda: nn.Dropout(0.5, seed=seed), {"x": draw.normal(2, 3, 4)}, one_mask)),
        ("FeedForward", case(randomized(lambda: nn.FeedForward(D, F, init(), dtype=F64)),
                             {"x": draw.normal(2, 3, D)})),
        ("MultiHeadAttention", case(randomized(lambda: nn.MultiHeadAttention(D, H, init(), dtype=F64)),
                                    {"x": draw.normal(2, 4, D)}, masked)),
        ("TransformerBlock (pre-LN)", block(True)),
        ("TransformerBlock (post-LN)", block(False)),
        ("Encoder", case(randomized(lambda: nn.Encoder(2, D, H, F, init(), dtype=F64)),
                         {"x": draw.normal(2, 4, D)}, masked)),
        ("TaskEncoder", case(randomized(lambda: nn.TaskEncoder(T, D, init(), hidden=4, dtype=F64)),
                             {"task_ids": backend.to_device(numpy.array([0, 2, 1, 2]))})),
        ("TaskAttention (gate 0.4)", case(task_attention, {"streams": draw.normal(2, T, 3, D)})),
        ("TaskLayerNorm", case(randomized(lambda: nn.TaskLayerNorm(D, T, init(), embed_dim=3, dtype=F64)),
                               {"x": draw.normal(3, 4, D), "tasks": mixed_tasks})),
        ("TaskLoRA", case(randomized(lambda: nn.TaskLoRA(D, 5, T, 2, init(), dtype=F64)),
                          {"x": draw.normal(3, 4, D), "tasks": mixed_tasks})),
        ("MixtureOfExperts", case(randomized(experts), {"x": draw.normal(3, 4, D), "tasks": mixed_tasks})),
        ("TransformerBlock (task-norm)", block(True, "task-norm")),
        ("TransformerBlock (lora)", block(True, "lora")),
        ("TransformerBlock (lora with FFN, post-LN)", block(False, "lora", lora_ffn=True)),
        ("TransformerBlock (mmoe, post-LN)", block(False, "mmoe")),
        ("TokenClassificationHead + loss", head("token", draw.ints(3, 2, 4))),
        ("SequenceClassificationHead + loss", head("sequence", draw.ints(3, 2))),
        ("RegressionHead + loss", head("regression", draw.normal(2, 3))),
    ]


MODEL_CASES = [("conditioned", {}), ("joint", {}), ("joint", {"branch_layers": 1}),
               ("joint", {"branch_layers": 1, "task_module": "lora"}),
               ("conditioned", {"task_module": "lora", "lora_ffn": True})] + [
    (mode, {"task_module": module}) for module in ("task-norm", "lora", "mmoe") for mode in ("conditioned", "joint")]


def _model_name(mode, options):
    words = [mode] + [f"{key.replace('_', ' ')} {value}" for key, value in options.items()]
    return f"MultiTaskTransformer ({', '.join(words)})"


def _check_model(mode, seed, **options):
    """A small float64 model (d_model 8, 2 heads, 2 layers; token, sequence, regression tasks).

    options: more ModelConfig fields (task_module, branch_layers); a task module's
    parameters are moved off their initial values (B = 0, W_γ = 0 would hide a wrong gradient).
    """
    config = ModelConfig(tasks=[dict(name="tokens", kind="token", num_outputs=4),
                                dict(name="label", kind="sequence", num_outputs=3),
                                dict(name="value", kind="regression", num_outputs=2)],
                         vocab_size=6, max_len=8, d_model=8, num_heads=2, d_ff=16, num_layers=2,
                         mode=mode, seed=seed, dtype=F64, lora_rank=2, norm_embed_dim=3, **options)
    net = model.MultiTaskTransformer(config)
    if config.task_module != "none":
        _randomize(net.encoder, seed, scale=0.1)
    if net.task_attention is not None:
        net.task_attention.params["gate"][...] = 0.4   # open the gate: the streams mix
    draw = _Draw(seed)
    batch = {"inputs": draw.ints(6, 3, 5), "mask": draw.lengths_mask([5, 3, 1], 5),
             "targets": {"tokens": draw.ints(4, 3, 5), "label": draw.ints(3, 3), "value": draw.normal(3, 2)}}
    if mode == "conditioned":
        batch["task_ids"] = backend.to_device(numpy.array([0, 1, 2]))
    else:
        batch["present"] = {"label": backend.to_device(numpy.array([True, False, True]))}
    weights = backend.to_device(numpy.array([1.0, 0.5, 2.0]), dtype=F64)
    net.zero_grad()
    net.loss(batch, weights)
    net.backward()
    return _directional_and_coordinates(lambda: net.loss(batch, weights).total, net.parameters(), net.gradients(),
                                        seed, MODEL_TOLERANCE)


# --- running and reporting ------------------------------------------------------

def _plan(seed):
    """(group, name, tolerance, thunk) for every check, before any runs."""
    plan = [("op", name, TOLERANCE, lambda name=name: _check_op(name, seed)) for name in op_names()]
    plan += [("layer", name, LAYER_TOLERANCE, run) for name, run in _layer_cases(seed)]
    plan += [("model", _model_name(mode, options), MODEL_TOLERANCE,
              lambda mode=mode, options=options: _check_model(mode, seed, **options)) for mode, options in MODEL_CASES]
    return plan


def run_checks(seed=0, only=None) -> list:
    """Run the gradient checks; one ``CheckRow`` each.

    seed: draws the inputs, initial weights, upstream gradients and directions.
    only: keep the checks whose name contains this text (case-insensitive), e.g. "attention".
    A check that raises becomes a failing row (worst = inf) with the error in ``detail``.
    """
    if only is not None and not isinstance(only, str):
        raise TypeError(f"only must be a string (a part of a check's name) or None, got {type(only).__name__}")
    rows = []
    for group, name, tolerance, thunk in _plan(seed):
        if only is not None and only.lower() not in name.lower():
            continue
        start = time.perf_counter()
        try:
            worst, passed, detail = thunk()
        except Exception as error:   # one broken check must not hide the others
            worst, passed, detail = math.inf, False, f"{type(error).__name__}: {error}"
        worst = math.inf if worst != worst else float(worst)   # NaN never passes as a number
        rows.append(CheckRow(group, name, worst, tolerance, bool(passed) and worst <= tolerance,
                             time.perf_counter() - start, detail))
    return rows


def format_table(rows) -> str:
    """The rows as a table, a summary line and what the thresholds mean."""
    rows = list(rows)
    width = max([len("check")] + [len(r.name) for r in rows]) + 2
    lines = [f"{'check':<{width}}{'worst rel. error':>18}{'tolerance':>12}  result",
             "-" * (width + 38)]
    group = None
    for r in rows:
        if r.group != group and group is not None:
            lines.append("")
        group = r.group
        lines.append(f"{r.name:<{width}}{r.worst:>18.1e}{r.tolerance:>12.0e}  {'pass' if r.passed else 'FAIL'}")
        if not r.passed and r.detail:
            lines += ["    " + line for line in r.detail.splitlines()]
    seconds = sum(r.seconds for r in rows)
    lines += ["", f"{sum(r.passed for r in rows)} of {len(rows)} checks passed ({seconds:.1f} s, "
                  f"backend {backend.get_backend()}, float64)",
              f"Thresholds: {THRESHOLDS}. Layers and models: <= {MODEL_TOLERANCE:.0e} "
              f"(several ops chained, rounding adds up)."]
    return "\n".join(lines)
