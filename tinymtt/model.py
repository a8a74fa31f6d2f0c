"""MultiTaskTransformer: embedding, task encoder, encoder, task attention, heads, weighted loss.

In short, for token inputs x (B, S):

    e      = E[x]·√D + P[:S]                                  (B, S, D)
    conditioned:  h0 = e + Tf[task_b]   (one task id per example)
                  h = Encoder(h0, padding mask, task ids)      (task modules read the ids)
    joint:        z = the first L − K blocks on e              (B, S, D), once per example (K = branch_layers)
                  h0_τ = z + Tf[τ] for every task τ            (B, T, S, D) -> (B·T, S, D)
                  h = the last K blocks on h0 (stream b·T + τ has task τ), then TaskAttention(h)
    y_τ    = Head_τ(h or h_τ);  L_τ = loss_τ(y_τ, targets_τ)  (examples without a target masked)
    L      = Σ_τ w_τ L_τ

A batch is a dict:
    inputs    (B, S) int token ids, or (B, S, K) float
    mask      (B, S) bool, True = real token (optional: all real)
    task_ids  (B,) int -- conditioned mode only: each example's task
    targets   {task name: (B, S) int | (B,) int | (B, K) float}  token / sequence / regression
    present   {task name: (B,) bool} -- joint mode, optional: which examples have that target
In conditioned mode an example counts for the task it carries; in joint mode
for every task whose target it has. A task absent from a batch has loss 0,
and the result's ``counted`` says so (never a zero loss passed off as a real one).

    result = model.loss(batch, weights)     # LossResult(total, losses, counted)
    dweights = model.backward()             # every gradient; returns ∂L/∂w_τ = L_τ

The math is docs/DESIGN.md's "The model".
"""

from __future__ import annotations

import math
from typing import NamedTuple

from . import backend
from .config import ModelConfig, TaskSpec  # noqa: F401  (re-exported)
from .nn import Embedding, Encoder, Linear, Module, TaskAttention, TaskEncoder, TaskOptions, make_head
from .ops import causal_mask, padding_mask, positional_encoding, weighted_sum_backward, weighted_sum_forward
from .validation import ShapeError, check_array, check_finite, check_index_range, check_shape


class LossResult(NamedTuple):
    """What ``MultiTaskTransformer.loss`` returns."""
    total: object     # 0-d array, L = Σ_τ w_τ L_τ
    losses: dict      # {task: 0-d array L_τ}, in the model's task order (0 for a task not counted)
    counted: dict     # {task: bool}: whether the batch had an example of that task (its L_τ is real)


class _Saved(NamedTuple):
    """What forward (and then loss) keep for backward."""
    size: int
    seq_len: int
    mask: object
    task_ids: object
    weighted: object = None    # the weighted sum's cache, once ``loss`` has run


class MultiTaskTransformer(Module):
    """One shared Transformer encoder, one head per task, conditioned or joint."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.config = c = config
        rng = backend.init_rng(c.seed)
        if c.vocab_size is not None:
            self.embedding = Embedding(c.vocab_size, c.d_model, rng, dtype=c.dtype)
            self.input_proj = None
        else:
            self.embedding = None
            self.input_proj = Linear(c.input_dim, c.d_model, rng, dtype=c.dtype)
        self.task_encoder = TaskEncoder(c.num_tasks, c.d_model, rng, hidden=c.task_hidden, dtype=c.dtype)
        task = TaskOptions(c.task_module, c.num_tasks, c.lora_rank, c.num_experts, c.norm_embed_dim, c.lora_ffn)
        # in joint mode the trunk (first L − K blocks) runs once for every task: it has no task module
        self.encoder = Encoder(c.num_layers, c.d_model, c.num_heads, c.d_ff, rng, c.dropout, c.norm_first,
                               c.activation, c.dtype, task, task_layers=c.num_layers - c.trunk_layers)
        self.task_attention = (TaskAttention(c.d_model, c.num_heads, c.num_tasks, rng, c.task_attention_gate,
                                             c.dropout, c.dtype) if c.mode == "joint" else None)
        self.heads = [make_head(t.kind, c.d_model, t.num_outputs, rng, c.dtype) for t in c.tasks]
        self.positions = positional_encoding(c.max_len, c.d_model, dtype=c.dtype)  # fixed, not a parameter

    # -- batch checks -------------------------------------------------------
    def check_batch(self, batch):
        """Validate a batch; returns (inputs, mask, task_ids or None). Clear errors, named."""
        c = self.config
        if not isinstance(batch, dict) or "inputs" not in batch:
            raise TypeError("batch must be a dict with at least 'inputs' (and 'targets' for a loss)")
        inputs = batch["inputs"]
        if c.vocab_size is not None:
            check_array(inputs, "batch['inputs']", ndim=2, kind="int")
            check_index_range(inputs, "batch['inputs']", c.vocab_size)
        else:
            check_array(inputs, "batch['inputs']", ndim=3, kind="float")
            check_shape(inputs, "batch['inputs']", (None, None, c.input_dim), "(B, S, K)")
            check_finite(inputs, "batch['inputs']")
        size, seq_len = inputs.shape[:2]
        if seq_len > c.max_len:
            raise ShapeError(f"batch['inputs'] has sequence length {seq_len}, more than max_len={c.max_len}")
        xp = backend.array_module(inputs)
        mask = batch.get("mask")
        if mask is None:
            mask = xp.ones((size, seq_len), dtype=bool)
        check_array(mask, "batch['mask']", ndim=2, kind="bool")
        check_shape(mask, "batch['mask']", (size, seq_len), "(B, S)")
        task_ids = batch.get("task_ids")
        if c.mode == "conditioned":
            if task_ids is None:
                raise ValueError("conditioned mode needs batch['task_ids'] (B,): the task of each example")
            check_array(task_ids, "batch['task_ids']", ndim=1, kind="int")
            check_shape(task_ids, "batch['task_ids']", (size,), "(B,)")
            check_index_range(task_ids, "batch['task_ids']", c.num_tasks, "number of tasks")
        return inputs, mask, task_ids

    def _check_targets(self, batch, size, seq_len):
        targets = batch.get("targets")
        if not isinstance(targets, dict):
            raise TypeError("batch['targets'] must be a dict {task name: target array}")
        unknown = sorted(set(targets) - set(self.config.task_names))
        if unknown:
            raise KeyError(f"batch['targets'] names unknown tasks {unknown}; the tasks are {self.config.task_names}")
        for t in self.config.tasks:
            if t.name not in targets:
                continue
            name = f"batch['targets'][{t.name!r}]"
            if t.kind == "token":
                check_array(targets[t.name], name, kind="int")
                check_shape(targets[t.name], name, (size, seq_len), "(B, S)")
            elif t.kind == "sequence":
                check_array(targets[t.name], name, kind="int")
                check_shape(targets[t.name], name, (size,), "(B,)")
            else:
                check_array(targets[t.name], name, kind="float")
                check_shape(targets[t.name], name, (size, t.num_outputs), "(B, K)")
                check_finite(targets[t.name], name)
        # regression targets in the model's dtype (a float64 target must not upcast a float32 model)
        return {name: (value.astype(self.config.dtype, copy=False) if value.dtype.kind == "f" else value)
                for name, value in targets.items()}

    # -- forward ---------------------------------------------------------------
    def _embed(self, inputs):
        seq_len = inputs.shape[1]
        if self.embedding is not None:
            return self.embedding(inputs) * math.sqrt(self.config.d_model) + self.positions[:seq_len]
        inputs = inputs.astype(self.config.dtype, copy=False)   # float64 data must not upcast a float32 model
        return self.input_proj(inputs) + self.positions[:seq_len]

    def forward(self, batch):
        """Outputs per task: {name: logits (B,S,C) | logits (B,C) | values (B,K)}."""
        c = self.config
        inputs, mask, task_ids = self.check_batch(batch)
        xp = backend.array_module(inputs)
        size, seq_len = mask.shape
        attend = padding_mask(mask, seq_len)                                   # (B, 1, 1, S)
        if c.causal:
            attend = attend & causal_mask(seq_len, xp=xp)
        embedded = self._embed(inputs)                                          # (B, S, D)
        if c.mode == "conditioned":
            features = self.task_encoder(task_ids)                              # (B, D)
            hidden = self.encoder(embedded + features[:, None, :], attend,      # (B, S, D)
                                  task_ids if c.task_module != "none" else None)
            outputs = {t.name: head.forward(hidden, mask) for t, head in zip(c.tasks, self.heads)}
        else:
            tasks, trunk = c.num_tasks, c.trunk_layers
            if trunk:                                                           # shared trunk, once per example
                embedded = self.encoder.forward_blocks(embedded, attend, 0, trunk)
            features = self.task_encoder(xp.arange(tasks))                      # (T, D)
            streams = embedded[:, None, :, :] + features[None, :, None, :]      # (B, T, S, D)
            stream_mask = xp.broadcast_to(attend[:, None], (size, tasks) + attend.shape[1:])
            stream_tasks = xp.tile(xp.arange(tasks), size) if c.task_module != "none" else None   # row b·T + τ: τ
            hidden = self.encoder.forward_blocks(streams.reshape(size * tasks, seq_len, c.d_model),
                                                 stream_mask.reshape((size * tasks,) + attend.shape[1:]),
                                                 trunk, c.num_layers, stream_tasks)
            hidden = self.task_attention(hidden.reshape(size, tasks, seq_len, c.d_model))
            outputs = {t.name: head.forward(hidden[:, i], mask) for i, (t, head) in enumerate(zip(c.tasks, self.heads))}
        self.keep(_Saved(size, seq_len, mask, task_ids))
        return outputs

    # -- loss ------------------------------------------------------------------
    def task_weights(self, weights, xp):
        """None -> all ones; a dict {name: w}, a sequence or an array (T,) -> (T,) array."""
        c = self.config
        if weights is None:
            return xp.ones(c.num_tasks, dtype=c.dtype)
        if isinstance(weights, dict):
            unknown = sorted(set(weights) - set(c.task_names))
            if unknown:
                raise KeyError(f"weights name unknown tasks {unknown}; the tasks are {c.task_names}")
            weights = [float(weights.get(name, 1.0)) for name in c.task_names]
        array = xp.asarray(weights, dtype=c.dtype)
        if array.shape != (c.num_tasks,):
            raise ShapeError(f"weights must have one entry per task ({c.num_tasks}), got shape {tuple(array.shape)}")
        if not bool(xp.all(xp.isfinite(array))):
            raise ValueError("weights must be finite numbers")
        return array

    def loss(self, batch, weights=None) -> LossResult:
        """LossResult(total L = Σ w_τ L_τ, {name: L_τ}, {name: counted}); keeps what backward needs.

        weights: None (all ones), {name: w}, or a sequence / array of T numbers.
        """
        c = self.config
        outputs = self.forward(batch)
        saved = self.saved()
        size, seq_len, mask, task_ids = saved.size, saved.seq_len, saved.mask, saved.task_ids
        xp = backend.array_module(mask)
        targets = self._check_targets(batch, size, seq_len)
        present_given = batch.get("present") or {}
        losses, counted = [], {}
        for i, (t, head) in enumerate(zip(c.tasks, self.heads)):
            if t.name in targets:
                target = targets[t.name]
                present = task_ids == i if c.mode == "conditioned" else present_given.get(t.name)
                if present is None:
                    present = xp.ones(size, dtype=bool)
                check_array(present, f"present for task {t.name!r}", ndim=1, kind="bool")
                check_shape(present, f"present for task {t.name!r}", (size,), "(B,)")
            else:  # no target for this task in the batch: nothing counts
                shape = {"token": (size, seq_len), "sequence": (size,)}.get(t.kind, (size, t.num_outputs))
                target = xp.zeros(shape, dtype=xp.int64 if t.kind != "regression" else c.dtype)
                present = xp.zeros(size, dtype=bool)
            try:
                losses.append(head.loss(outputs[t.name], target, mask, present))
            except (ShapeError, TypeError) as error:
                raise type(error)(f"task {t.name!r}: {error}") from None
            # a token task counts only where a present example has a real token
            counted[t.name] = bool(xp.any(present[:, None] & mask) if t.kind == "token" else xp.any(present))
        total, weighted = weighted_sum_forward(xp.stack(losses), self.task_weights(weights, xp))
        self.keep(saved._replace(weighted=weighted))
        return LossResult(total, {t.name: loss for t, loss in zip(c.tasks, losses)}, counted)

    # -- backward --------------------------------------------------------------
    def backward(self, dlosses=None):
        """Fill every gradient from the last ``loss`` call; returns ∂L/∂w (T,), which is L_τ.

        dlosses (T,) replaces ∂L/∂L_τ = w_τ -- e.g. a one-hot vector gives the
        gradient of one task's loss alone (per-task gradients for the balancing
        strategies). Gradients accumulate (+=), as in every layer.
        """
        c = self.config
        saved = self._cache
        if saved is None or saved.weighted is None:
            raise RuntimeError("MultiTaskTransformer.backward was called before loss: run model.loss(batch) first")
        xp = backend.array_module(saved.weighted.weights)
        one = xp.asarray(1.0, dtype=c.dtype)
        dlosses_weighted, dweights = weighted_sum_backward(one, saved.weighted)
        dlosses = dlosses_weighted if dlosses is None else xp.asarray(dlosses, dtype=c.dtype)
        size, seq_len = saved.size, saved.seq_len
        if c.mode == "conditioned":
            dhidden = sum(head.backward(dlosses[i]) for i, head in enumerate(self.heads))
            dembedded = self.encoder.backward(dhidden)                          # (B, S, D)
            self.task_encoder.backward(dembedded.sum(axis=1))                   # Tf broadcast over S
        else:
            dstreams = xp.stack([head.backward(dlosses[i]) for i, head in enumerate(self.heads)], axis=1)
            dhidden = self.task_attention.backward(dstreams)
            dstreams0 = self.encoder.backward_blocks(dhidden.reshape(size * c.num_tasks, seq_len, c.d_model),
                                                     c.trunk_layers, c.num_layers)
            dstreams0 = dstreams0.reshape(size, c.num_tasks, seq_len, c.d_model)
            self.task_encoder.backward(dstreams0.sum(axis=(0, 2)))             # Tf[τ] feeds stream τ everywhere
            dembedded = dstreams0.sum(axis=1)           # the trunk's output feeds every stream: sum over τ
            if c.trunk_layers:
                dembedded = self.encoder.backward_blocks(dembedded, 0, c.trunk_layers)
        if self.embedding is not None:
            self.embedding.backward(dembedded * math.sqrt(c.d_model))
        else:
            self.input_proj.backward(dembedded)
        return dweights

    # -- what the task modules learned ------------------------------------------------
    def gate_affinity(self, batch) -> list:
        """With ``task_module="mmoe"``: the T×E gate matrix of every mixture-of-experts block on ``batch``
        (eval mode): row t = task t's mean gate probabilities over its real positions. One more learned
        view of task affinity: tasks with similar rows share experts.
        """
        c = self.config
        if c.task_module != "mmoe":
            raise ValueError(f"gate_affinity needs task_module='mmoe', the model has {c.task_module!r}")
        with self.evaluating():
            self.forward(batch)
        mask = self.saved().mask
        xp = backend.array_module(mask)
        if c.mode == "joint":   # stream b·T + τ has example b's mask
            mask = xp.repeat(mask, c.num_tasks, axis=0)
        return [block.ffn.affinity(mask) for block in self.encoder.blocks if block.task_module == "mmoe"]
