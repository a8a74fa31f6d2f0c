"""The speed peer: tinymtt's benchmark model written in PyTorch eager (float32).

The same architecture as the model ``tinymtt bench`` times (docs/DESIGN.md, conditioned mode):

    e      = E[x]·√D + P[:S]                      nn.Embedding + the same sinusoidal table
    h0     = e + Tf[task_b],  Tf = Linear(onehot)  task encoder, no hidden layer
    h      = L × TransformerEncoderLayer(norm_first, GELU tanh, dropout 0), then LayerNorm
    L_τ    = CE(Head_τ(h[b : task_b = τ]), targets_τ) over that task's examples' real tokens
    L      = Σ_τ w_τ L_τ  (w = 1)

and one step is zero_grad, loss, backward, AdamW.step, like tinymtt's.

It is the model a PyTorch user would write for this batch, with nothing that
slows it for nothing. Each choice:

* ``nn.TransformerEncoderLayer`` with ``batch_first=True`` (no transposes),
  ``norm_first=True`` and GELU (tanh) as tinymtt's blocks; ``dropout=0.0``,
  as tinymtt's bench model.
* The key padding mask is passed only when the batch has a padded position.
  The bench batch has none, so attention gets no mask at all and PyTorch
  takes its fastest attention path (scaled_dot_product_attention without a
  mask). tinymtt still applies its (all-True) mask: that cost is ours.
* Each task's head reads only its own examples (boolean row indexing), and
  padded targets are ``ignore_index``: the same work as tinymtt's loss.
* ``torch.optim.AdamW`` and ``zero_grad`` with their defaults (set_to_none=True).
* torch's own default thread count (one per core); eager mode, float32: no
  ``torch.compile``, no autocast. The peer is the eager PyTorch a student
  would write, not a tuned one.

This file lives outside the ``tinymtt`` package on purpose: no autograd library
appears in tinymtt/. ``tinymtt.commands.bench`` loads it from the source checkout when
torch is installed.
"""

from __future__ import annotations

import numpy
import torch
from torch import nn
from torch.nn import functional

from tinymtt.ops import positional_encoding


class PeerModel(nn.Module):
    def __init__(self, vocab_size, seq_len, d_model, num_heads, num_layers, d_ff, num_tasks):
        super().__init__()
        self.num_tasks = num_tasks
        self.scale = d_model ** 0.5
        self.embedding = nn.Embedding(vocab_size, d_model)
        table = positional_encoding(seq_len, d_model, dtype="float32", xp=numpy)
        self.register_buffer("positions", torch.from_numpy(table))
        self.task_encoder = nn.Linear(num_tasks, d_model)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, num_heads, d_ff, dropout=0.0, activation=nn.GELU(approximate="tanh"),
                                       batch_first=True, norm_first=True)
            for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model)
        self.heads = nn.ModuleList(nn.Linear(d_model, vocab_size) for _ in range(num_tasks))

    def loss(self, inputs, mask, task_ids, targets, weights):
        seq_len = inputs.shape[1]
        h = self.embedding(inputs) * self.scale + self.positions[:seq_len]
        onehot = functional.one_hot(task_ids, self.num_tasks).to(h.dtype)
        h = h + self.task_encoder(onehot)[:, None, :]
        padding = None if bool(mask.all()) else ~mask      # torch: True = ignore this key; no padding, no mask
        for block in self.blocks:
            h = block(h, src_key_padding_mask=padding)
        h = self.final_norm(h)
        total = h.new_zeros(())
        for task, head in enumerate(self.heads):
            rows = task_ids == task                        # this task's examples only
            logits = head(h[rows])                         # (B_τ, S, C)
            target = targets[task][rows].masked_fill(~mask[rows], -100)
            total = total + weights[task] * functional.cross_entropy(logits.flatten(0, 1), target.flatten())
        return total


def cuda_available() -> bool:
    return torch.cuda.is_available()


def make_step(settings, batch, device="cpu", seed=0, lr=1e-3, weight_decay=0.01):
    """Build the peer and return ``(step, synchronize, info)``.

    settings: the benchmark config (vocab_size, seq_len, d_model, num_heads, num_layers, d_ff, num_tasks)
    batch: host NumPy arrays -- inputs (B, S) int, mask (B, S) bool, task_ids (B,) int,
        targets (T, B, S) int -- the same data tinymtt trains on
    step(): one training step; synchronize(): wait for the device (CUDA) before reading a clock
    """
    torch.manual_seed(seed)
    keys = ("vocab_size", "seq_len", "d_model", "num_heads", "num_layers", "d_ff", "num_tasks")
    model = PeerModel(**{key: settings[key] for key in keys}).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    inputs, mask, task_ids, targets = (torch.from_numpy(batch[name]).to(device)
                                       for name in ("inputs", "mask", "task_ids", "targets"))
    weights = torch.ones(settings["num_tasks"], device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(inputs, mask, task_ids, targets, weights)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def synchronize():
        if device != "cpu":
            torch.cuda.synchronize()

    info = {"version": torch.__version__, "threads": torch.get_num_threads(), "device": device}
    return step, synchronize, info
