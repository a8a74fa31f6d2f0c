"""tinymtt's model in PyTorch, for both modes and every task module, reading ``tinymtt export``'s files.

    model, meta = load("model.safetensors")          # a TinyMTT (nn.Module) in the file's dtype
    outputs = model(inputs, mask, task_ids)           # {task: logits (B,S,C) | logits (B,C) | values (B,K)}
    losses, counted = task_losses(model, outputs, batch)
    save(model, "out.safetensors", meta)              # the same names and layouts, for tinymtt import

The math is tinymtt's (docs/DESIGN.md, "The model"); the names and layouts are
tinymtt.export's table. What is a torch.nn standard module and what is not:

Standard modules, used as they are:
  * ``nn.Embedding`` (token inputs) or ``nn.Linear`` (continuous inputs, ``input_proj``);
  * the task encoder: ``nn.Linear`` on the one-hot task row (``out``; with a hidden layer
    ``hidden``, ReLU, ``out``);
  * every block without a task module: ``nn.TransformerEncoderLayer`` (``batch_first``,
    ``norm_first`` as configured, LayerNorm eps 1e-5, ``self_attn.in_proj_weight`` = Wq, Wk, Wv
    packed), with two settings that make it tinymtt's block exactly:
      - its ``dropout`` between the FFN's two linears is replaced by ``nn.Identity``: tinymtt drops
        out on the attention weights and after each sublayer (dropout1, dropout2), not inside the FFN;
      - GELU is passed as the function ``gelu_tanh`` (F.gelu with approximate="tanh"), never as
        ``nn.GELU(approximate="tanh")``: in eval mode without autograd, torch's fast path
        (torch._transformer_encoder_layer_fwd) sees an nn.GELU module and computes the exact erf
        GELU instead, silently (torch 2.13). With a plain function the layer runs its Python path.
  * the final LayerNorm of a pre-LN encoder: ``nn.LayerNorm`` (``encoder.norm``);
  * task attention: ``nn.MultiheadAttention`` (``batch_first``) and ``nn.LayerNorm``;
  * the heads: ``nn.Linear``.

Not standard, written here in a few lines of torch:
  * the √D scale of the embedding and the fixed sinusoidal positions (a buffer, not saved);
  * the task-attention gate g = tanh(γ) (``task_attention.gate``), out = LayerNorm(X + g·MHA(X));
  * the masked mean pooling of the sequence and regression heads;
  * joint mode's streams (B, T, S, D) -> (B·T, S, D) and branch layers (the first L − K blocks run
    once per example, the task features are added after them);
  * the blocks with a task module (``TaskBlock``, the same sub-module names as the standard layer):
    task-norm (``TaskLayerNorm``: γ_t = 1 + e_t·W_γ, β_t = e_t·W_β), per-task LoRA (``TaskLoRA``:
    x·A_t·B_t added to the q, k, v, o projections, and with lora_ffn to linear1, linear2; its
    attention is written out with F.scaled_dot_product_attention), and MMoE (``experts`` of
    nn.Linear pairs mixed by the per-task softmax gate ``gate``).

One difference remains, at an input tinymtt's data never makes: a query with no key it may
attend to (an example with no real token, or causal attention whose first position is padding)
gives zeros in tinymtt and NaN in torch.

This file lives outside the tinymtt package on purpose (no autograd library inside tinymtt/).
"""

from __future__ import annotations

import json
import math

import numpy
import torch
from torch import nn
from torch.nn import functional

from tinymtt.config import ModelConfig
from tinymtt.export import FORMAT_NAME, FORMAT_VERSION, INSTALL
from tinymtt.ops import positional_encoding

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def gelu_tanh(x):
    """GELU, tanh form (tinymtt's): ½x(1 + tanh(√(2/π)(x + 0.044715x³)))."""
    return functional.gelu(x, approximate="tanh")


def activation(name):
    return gelu_tanh if name == "gelu" else functional.relu


class TaskEncoder(nn.Module):
    """Tf = onehot(t)·W + b, or ReLU(onehot(t)·W1 + b1)·W2 + b2: nn.Linear layers."""

    def __init__(self, num_tasks, d_model, hidden=None):
        super().__init__()
        self.num_tasks = num_tasks
        self.hidden = nn.Linear(num_tasks, hidden) if hidden else None
        self.out = nn.Linear(hidden or num_tasks, d_model)

    def forward(self, task_ids):
        onehot = functional.one_hot(task_ids, self.num_tasks).to(self.out.weight.dtype)
        return self.out(onehot if self.hidden is None else functional.relu(self.hidden(onehot)))


class TaskLayerNorm(nn.Module):
    """task-norm: LayerNorm (no affine) scaled by γ_t = 1 + e_t·W_γ and shifted by β_t = e_t·W_β."""

    def __init__(self, d_model, num_tasks, embed_dim):
        super().__init__()
        self.task_embedding = nn.Parameter(torch.zeros(num_tasks, embed_dim))
        self.gamma_weight = nn.Parameter(torch.zeros(embed_dim, d_model))
        self.beta_weight = nn.Parameter(torch.zeros(embed_dim, d_model))

    def forward(self, x, tasks):
        embedded = self.task_embedding[tasks]                                 # (N, d_e)
        gamma = 1 + embedded @ self.gamma_weight                               # (N, D)
        beta = embedded @ self.beta_weight
        return functional.layer_norm(x, x.shape[-1:], eps=1e-5) * gamma[:, None] + beta[:, None]


class TaskLoRA(nn.Module):
    """The update x·A_t·B_t of one projection; A (T, Din, r), B (T, r, Dout)."""

    def __init__(self, in_features, out_features, num_tasks, rank):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(num_tasks, in_features, rank))
        self.b = nn.Parameter(torch.zeros(num_tasks, rank, out_features))

    def forward(self, x, tasks):                   # x (N, S, Din), tasks (N,)
        return (x @ self.a[tasks]) @ self.b[tasks]


class FeedForward(nn.Module):
    """One MMoE expert: linear2(activation(linear1(x))), both nn.Linear."""

    def __init__(self, d_model, d_ff, activation_name):
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.activation = activation(activation_name)

    def forward(self, x):
        return self.linear2(self.activation(self.linear1(x)))


class TaskGate(nn.Module):
    """The MMoE gate of each task: p = softmax(x·W[t] + b[t]); W (T, D, E), b (T, E)."""

    def __init__(self, d_model, num_tasks, num_experts):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_tasks, d_model, num_experts))
        self.bias = nn.Parameter(torch.zeros(num_tasks, num_experts))

    def forward(self, x, tasks):
        return torch.softmax(x @ self.weight[tasks] + self.bias[tasks][:, None], dim=-1)


def standard_block(c: ModelConfig):
    """nn.TransformerEncoderLayer made into tinymtt's block exactly (see the module docstring)."""
    layer = nn.TransformerEncoderLayer(c.d_model, c.num_heads, c.d_ff, dropout=c.dropout,
                                       activation=activation(c.activation), layer_norm_eps=1e-5,
                                       batch_first=True, norm_first=c.norm_first)
    layer.dropout = nn.Identity()        # tinymtt has no dropout between the FFN's two linears
    return layer


class TaskBlock(nn.Module):
    """A block with a task module: the standard layer's sub-modules and names, plus the task's."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        module, tasks, width = c.task_module, c.num_tasks, c.d_model
        self.module, self.norm_first, self.num_heads, self.p = module, c.norm_first, c.num_heads, c.dropout
        norm = ((lambda: TaskLayerNorm(width, tasks, c.norm_embed_dim)) if module == "task-norm"
                else (lambda: nn.LayerNorm(width, eps=1e-5)))
        self.norm1, self.norm2 = norm(), norm()
        self.self_attn = nn.MultiheadAttention(width, c.num_heads, dropout=c.dropout, batch_first=True)
        if module == "mmoe":
            self.experts = nn.ModuleList(FeedForward(width, c.d_ff, c.activation) for _ in range(c.num_experts))
            self.gate = TaskGate(width, tasks, c.num_experts)
        else:
            self.linear1, self.linear2 = nn.Linear(width, c.d_ff), nn.Linear(c.d_ff, width)
            self.activation = activation(c.activation)
        if module == "lora":
            names = ["q", "k", "v", "o"]
            sizes = [(width, width)] * 4
            if c.lora_ffn:
                names, sizes = names + ["linear1", "linear2"], sizes + [(width, c.d_ff), (c.d_ff, width)]
            self.lora = nn.ModuleDict({n: TaskLoRA(i, o, tasks, c.lora_rank) for n, (i, o) in zip(names, sizes)})
        self.dropout1, self.dropout2 = nn.Dropout(c.dropout), nn.Dropout(c.dropout)

    def _norm(self, layer, x, tasks):
        return layer(x, tasks) if self.module == "task-norm" else layer(x)

    def _attention(self, x, mask, causal, tasks):
        """Self-attention; with LoRA written out (W + A_t·B_t on every projection), else nn.MultiheadAttention.

        mask: (B, S) bool, True = a real token; causal: (S, S) bool, True = may NOT attend, or None.
        """
        if self.module != "lora":
            return self.self_attn(x, x, x, key_padding_mask=~mask, attn_mask=causal, need_weights=False)[0]
        attn, size, seq_len, width = self.self_attn, x.shape[0], x.shape[1], x.shape[2]
        weights, biases = attn.in_proj_weight.chunk(3), attn.in_proj_bias.chunk(3)

        def heads(index, name):
            y = functional.linear(x, weights[index], biases[index]) + self.lora[name](x, tasks)
            return y.view(size, seq_len, self.num_heads, width // self.num_heads).transpose(1, 2)

        allowed = mask[:, None, None, :] if causal is None else mask[:, None, None, :] & ~causal   # True = may attend
        mixed = functional.scaled_dot_product_attention(heads(0, "q"), heads(1, "k"), heads(2, "v"), attn_mask=allowed,
                                                        dropout_p=self.p if self.training else 0.0)
        mixed = mixed.transpose(1, 2).reshape(size, seq_len, width)
        return attn.out_proj(mixed) + self.lora["o"](mixed, tasks)

    def _ffn(self, x, tasks):
        if self.module == "mmoe":
            gates = self.gate(x, tasks)                                         # (N, S, E)
            return sum(gates[..., e:e + 1] * expert(x) for e, expert in enumerate(self.experts))
        if self.module == "lora" and "linear1" in self.lora:
            hidden = self.activation(self.linear1(x) + self.lora["linear1"](x, tasks))
            return self.linear2(hidden) + self.lora["linear2"](hidden, tasks)
        return self.linear2(self.activation(self.linear1(x)))

    def forward(self, x, mask, causal, tasks):
        if self.norm_first:
            h = x + self.dropout1(self._attention(self._norm(self.norm1, x, tasks), mask, causal, tasks))
            return h + self.dropout2(self._ffn(self._norm(self.norm2, h, tasks), tasks))
        h = self._norm(self.norm1, x + self.dropout1(self._attention(x, mask, causal, tasks)), tasks)
        return self._norm(self.norm2, h + self.dropout2(self._ffn(h, tasks)), tasks)


class Encoder(nn.Module):
    """``layers`` (standard or TaskBlock) and, pre-LN, the final ``norm``; the names of nn.TransformerEncoder."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        first_task_layer = c.trunk_layers
        self.layers = nn.ModuleList(TaskBlock(c) if c.task_module != "none" and i >= first_task_layer
                                    else standard_block(c) for i in range(c.num_layers))
        self.norm = nn.LayerNorm(c.d_model, eps=1e-5) if c.norm_first else None

    def run(self, x, mask, causal, start, stop, tasks=None):
        """Layers start..stop-1 (and the final norm when stop = L).

        mask: (B, S) bool, True = a real token; causal: (S, S) bool, True = may NOT attend (torch's
        convention, as the standard layer takes it), or None.
        """
        for layer in self.layers[start:stop]:
            if isinstance(layer, TaskBlock):
                x = layer(x, mask, causal, tasks)
            else:
                x = layer(x, src_mask=causal, src_key_padding_mask=~mask)
        if stop == len(self.layers) and self.norm is not None:
            x = self.norm(x)
        return x


class TaskAttention(nn.Module):
    """out = LayerNorm(X + g·MHA(X)) over the T task tokens of each position; g = tanh(γ) or 1."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        self.attn = nn.MultiheadAttention(c.d_model, c.num_heads, dropout=c.dropout, batch_first=True)
        self.norm = nn.LayerNorm(c.d_model, eps=1e-5)
        self.gate = nn.Parameter(torch.zeros(1)) if c.task_attention_gate else None

    def forward(self, streams):                       # (B, T, S, D)
        size, tasks, seq_len, width = streams.shape
        tokens = streams.transpose(1, 2).reshape(size * seq_len, tasks, width)
        mixed = self.attn(tokens, tokens, tokens, need_weights=False)[0]
        gate = torch.tanh(self.gate) if self.gate is not None else 1.0
        out = self.norm(tokens + gate * mixed)
        return out.reshape(size, seq_len, tasks, width).transpose(1, 2)


def masked_mean(h, mask):
    """(B, S, D), (B, S) bool -> (B, D): the mean over the real positions (zeros for none)."""
    keep = mask.to(h.dtype)[:, :, None]
    return (h * (keep / keep.sum(dim=1, keepdim=True).clamp(min=1))).sum(dim=1)


class TinyMTT(nn.Module):
    """tinymtt's MultiTaskTransformer (conditioned or joint) as a torch module."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = c = config
        self.embedding = nn.Embedding(c.vocab_size, c.d_model) if c.vocab_size is not None else None
        self.input_proj = nn.Linear(c.input_dim, c.d_model) if c.input_dim is not None else None
        self.task_encoder = TaskEncoder(c.num_tasks, c.d_model, c.task_hidden)
        self.encoder = Encoder(c)
        self.task_attention = TaskAttention(c) if c.mode == "joint" else None
        self.heads = nn.ModuleList(nn.Linear(c.d_model, t.num_outputs) for t in c.tasks)
        table = positional_encoding(c.max_len, c.d_model, dtype=c.dtype, xp=numpy)
        self.register_buffer("positions", torch.from_numpy(table), persistent=False)   # fixed, not saved
        self.to(DTYPES[c.dtype])

    def forward(self, inputs, mask=None, task_ids=None):
        """{task name: outputs}; inputs (B, S) int or (B, S, K) float, mask (B, S) bool (True = real)."""
        c = self.config
        size, seq_len = inputs.shape[:2]
        if mask is None:
            mask = torch.ones(size, seq_len, dtype=torch.bool, device=inputs.device)
        causal = (torch.ones(seq_len, seq_len, dtype=torch.bool, device=mask.device).triu(1)   # True = may NOT attend
                  if c.causal else None)
        if self.embedding is not None:
            e = self.embedding(inputs) * math.sqrt(c.d_model) + self.positions[:seq_len]
        else:
            e = self.input_proj(inputs.to(self.positions.dtype)) + self.positions[:seq_len]
        if c.mode == "conditioned":
            h = self.encoder.run(e + self.task_encoder(task_ids)[:, None, :], mask, causal, 0, c.num_layers, task_ids)
            return {t.name: self._head(i, h, mask) for i, t in enumerate(c.tasks)}
        tasks, trunk = c.num_tasks, c.trunk_layers
        if trunk:
            e = self.encoder.run(e, mask, causal, 0, trunk)
        features = self.task_encoder(torch.arange(tasks, device=e.device))      # (T, D)
        streams = (e[:, None] + features[None, :, None]).reshape(size * tasks, seq_len, c.d_model)
        stream_mask = mask.repeat_interleave(tasks, dim=0)                       # stream b·T + τ: example b
        stream_tasks = torch.arange(tasks, device=e.device).repeat(size)         # ... and task τ
        h = self.encoder.run(streams, stream_mask, causal, trunk, c.num_layers, stream_tasks)
        h = self.task_attention(h.reshape(size, tasks, seq_len, c.d_model))
        return {t.name: self._head(i, h[:, i], mask) for i, t in enumerate(c.tasks)}

    def _head(self, index, h, mask):
        kind = self.config.tasks[index].kind
        return self.heads[index](h if kind == "token" else masked_mean(h, mask))


def task_losses(model, outputs, batch):
    """({task: L_τ}, {task: counted}) as tinymtt computes them (tinymtt.nn.heads).

    batch: tinymtt's batch dict with torch tensors (``to_torch``). Token tasks: cross-entropy over
    the real tokens of the examples that have the task; sequence: over those examples; regression:
    mean squared error over their outputs. A task with no example has loss 0 and counted False.
    """
    c = model.config if not isinstance(model, nn.parallel.DistributedDataParallel) else model.module.config
    mask, size = batch["mask"], batch["mask"].shape[0]
    losses, counted = {}, {}
    for i, t in enumerate(c.tasks):
        if c.mode == "conditioned":
            present = batch["task_ids"] == i
        else:
            present = batch.get("present", {}).get(t.name, torch.ones(size, dtype=torch.bool, device=mask.device))
        out, target = outputs[t.name], batch["targets"][t.name]
        if t.kind == "token":
            keep = present[:, None] & mask
            each = functional.cross_entropy(out.flatten(0, 1), target.clamp(min=0).flatten(), reduction="none")
            weight = keep.flatten().to(out.dtype)
        elif t.kind == "sequence":
            each = functional.cross_entropy(out, target.clamp(min=0), reduction="none")
            weight = present.to(out.dtype)
        else:
            each = ((out - target.to(out.dtype)) ** 2).flatten()
            weight = present[:, None].expand_as(out).flatten().to(out.dtype)
        losses[t.name] = (each * weight).sum() / weight.sum().clamp(min=1)
        counted[t.name] = bool(weight.sum() > 0)
    return losses, counted


def to_torch(batch, device="cpu"):
    """tinymtt's batch (NumPy arrays, nested dicts) as torch tensors on ``device``."""
    if isinstance(batch, dict):
        return {key: to_torch(value, device) for key, value in batch.items()}
    return torch.from_numpy(numpy.asarray(batch)).to(device)


# -- files -----------------------------------------------------------------------------------
def _safetensors_torch():
    try:
        import safetensors
        import safetensors.torch
    except ImportError:
        raise ImportError(INSTALL) from None
    return safetensors


def load(path, device="cpu"):
    """(TinyMTT with the file's parameters, the file's metadata dict) from a tinymtt export."""
    safetensors = _safetensors_torch()
    with safetensors.safe_open(str(path), framework="pt", device=str(device)) as handle:
        meta = handle.metadata() or {}
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (a safe_open handle)
    if meta.get("format") != FORMAT_NAME or int(meta.get("version", "0")) > FORMAT_VERSION:
        raise ValueError(f"{path} is not a tinymtt export (format {meta.get('format')!r}, "
                         f"version {meta.get('version')!r})")
    model = TinyMTT(ModelConfig.from_dict(json.loads(meta["config"]))).to(device)
    model.load_state_dict(tensors, strict=True)
    return model, meta


def save(model, path, meta):
    """Write the parameters under the same names and layouts, with the metadata ``meta`` (str -> str)."""
    safetensors = _safetensors_torch()
    tensors = {name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    safetensors.torch.save_file(tensors, str(path), metadata=dict(meta))
