"""The Transformer block and the encoder stack.

Pre-LN (default, as in GPT-2; trains without warmup tricks):
    h   = x + Dropout(MHA(LN1(x)))
    out = h + Dropout(FFN(LN2(h)))
Post-LN (the original "Attention Is All You Need"):
    h   = LN1(x + Dropout(MHA(x)))
    out = LN2(h + Dropout(FFN(h)))
FFN(x) = Linear(D→F) · GELU or ReLU · Linear(F→D).

A residual connection y = x + f(x) has dy/dx = I + df/dx: the upstream
gradient passes straight through *and* through f, and the two are added.

A block can hold a task module (tinymtt.nn.task_modules): "task-norm" makes
LN1 and LN2 task-conditioned, "lora" adds per-task low-rank updates to the
attention's four projections (and, with ``lora_ffn``, to the FFN's two linears), "mmoe" replaces the FFN by E experts and a
per-task gate. Such a block needs ``tasks`` (N,) in forward.
"""

from __future__ import annotations

from ..validation import check_positive_integer
from .basic import Dropout, LayerNorm, Linear, activation
from .attention import MultiHeadAttention
from .module import Module
from .task_modules import TASK_MODULES, MixtureOfExperts, TaskLayerNorm, TaskLoRA


class FeedForward(Module):
    """Position-wise FFN: Linear(D→F), activation, Linear(F→D).

    With ``lora_rank`` r (the "lora" task module with ``lora_ffn``) both linears get a
    per-task low-rank update x·A_t·B_t (TaskLoRA), and forward needs ``tasks`` (N,).
    """

    def __init__(self, d_model, d_ff, rng, activation_name="gelu", dtype="float32", lora_rank=None, num_tasks=None):
        super().__init__()
        self.linear1 = Linear(d_model, d_ff, rng, dtype=dtype)
        self.activation = activation(activation_name)
        self.linear2 = Linear(d_ff, d_model, rng, dtype=dtype)
        self.lora = None
        if lora_rank:
            self.lora = [TaskLoRA(d_model, d_ff, num_tasks, lora_rank, rng, dtype),
                         TaskLoRA(d_ff, d_model, num_tasks, lora_rank, rng, dtype)]

    def forward(self, x, tasks=None):
        if self.lora is None:
            out = self.linear2(self.activation(self.linear1(x)))
        else:
            if tasks is None:
                raise ValueError("FeedForward with LoRA needs tasks (N,): the task of each example")
            hidden = self.activation(self.linear1(x) + self.lora[0](x, tasks))
            out = self.linear2(hidden) + self.lora[1](hidden, tasks)
        self.keep(True)   # the sub-layers keep the values; this makes backward-before-forward name FeedForward
        return out

    def backward(self, dout):
        self.saved()
        if self.lora is None:
            return self.linear1.backward(self.activation.backward(self.linear2.backward(dout)))
        dhidden = self.activation.backward(self.linear2.backward(dout) + self.lora[1].backward(dout))
        return self.linear1.backward(dhidden) + self.lora[0].backward(dhidden)


class TaskOptions:
    """What a block's task module needs: which one, the number of tasks and its sizes."""

    def __init__(self, module="none", num_tasks=1, lora_rank=4, num_experts=2, norm_embed_dim=8, lora_ffn=False):
        if module not in TASK_MODULES:
            raise ValueError(f"task_module must be one of {TASK_MODULES}, got {module!r}")
        if lora_ffn and module != "lora":
            raise ValueError(f"lora_ffn applies to task_module 'lora' only, got task_module {module!r}")
        self.lora_ffn = bool(lora_ffn)
        self.module, self.num_tasks = module, check_positive_integer(num_tasks, "num_tasks")
        self.lora_rank = check_positive_integer(lora_rank, "lora_rank")
        self.num_experts = check_positive_integer(num_experts, "num_experts")
        self.norm_embed_dim = check_positive_integer(norm_embed_dim, "norm_embed_dim")


NO_TASK_MODULE = TaskOptions()


class TransformerBlock(Module):
    """One encoder block: self-attention and FFN sublayers with residuals.

    forward(x, mask=None, tasks=None): x (B, S, D), mask broadcastable to (B, H, S, S),
    tasks (B,) int -- needed by a block with a task module (``task``, a TaskOptions).
    """

    def __init__(self, d_model, num_heads, d_ff, rng, dropout=0.0, norm_first=True,
                 activation_name="gelu", dtype="float32", task=NO_TASK_MODULE):
        super().__init__()
        self.norm_first = bool(norm_first)
        self.task_module = task.module

        def norm():
            if task.module == "task-norm":
                return TaskLayerNorm(d_model, task.num_tasks, rng, task.norm_embed_dim, dtype=dtype)
            return LayerNorm(d_model, dtype=dtype)

        self.norm1 = norm()
        lora = dict(lora_rank=task.lora_rank, num_tasks=task.num_tasks) if task.module == "lora" else {}
        self.attn = MultiHeadAttention(d_model, num_heads, rng, dropout=dropout, dtype=dtype, **lora)
        self.dropout1 = Dropout(dropout, seed=int(rng.integers(2 ** 62)))
        self.norm2 = norm()
        if task.module == "mmoe":
            experts = [FeedForward(d_model, d_ff, rng, activation_name, dtype=dtype) for _ in range(task.num_experts)]
            self.ffn = MixtureOfExperts(experts, d_model, task.num_tasks, dtype=dtype)
        elif task.lora_ffn:
            self.ffn = FeedForward(d_model, d_ff, rng, activation_name, dtype=dtype, **lora)
        else:
            self.ffn = FeedForward(d_model, d_ff, rng, activation_name, dtype=dtype)
        self.ffn_tasks = task.module == "mmoe" or task.lora_ffn   # whether the FFN reads the task ids
        self.dropout2 = Dropout(dropout, seed=int(rng.integers(2 ** 62)))

    def forward(self, x, mask=None, tasks=None):
        if self.task_module != "none" and tasks is None:
            raise ValueError(f"a TransformerBlock with task module {self.task_module!r} needs tasks (B,): "
                             f"the task of each example")
        uses = self.task_module   # which sublayer reads the task ids

        def norm(layer, h):
            return layer(h, tasks) if uses == "task-norm" else layer(h)

        def ffn(h):
            return self.ffn(h, tasks) if self.ffn_tasks else self.ffn(h)

        attn_tasks = tasks if uses == "lora" else None
        if self.norm_first:
            h = x + self.dropout1(self.attn(norm(self.norm1, x), mask=mask, tasks=attn_tasks))
            out = h + self.dropout2(ffn(norm(self.norm2, h)))
        else:
            h = norm(self.norm1, x + self.dropout1(self.attn(x, mask=mask, tasks=attn_tasks)))
            out = norm(self.norm2, h + self.dropout2(ffn(h)))
        self.keep(True)
        return out

    def backward(self, dout):
        self.saved()
        if self.norm_first:
            dh = dout + self.norm2.backward(self.ffn.backward(self.dropout2.backward(dout)))
            return dh + self.norm1.backward(self.attn.backward(self.dropout1.backward(dh)))
        dsum2 = self.norm2.backward(dout)
        dh = dsum2 + self.ffn.backward(self.dropout2.backward(dsum2))
        dsum1 = self.norm1.backward(dh)
        return dsum1 + self.attn.backward(self.dropout1.backward(dsum1))


class Encoder(Module):
    """L blocks; with pre-LN a final LayerNorm (the residual stream is never normalised otherwise).

    task: the task module (TaskOptions) of the last ``task_layers`` blocks (default all L);
    the blocks before them are plain shared blocks (joint mode's trunk, with --branch-layers).
    ``forward_blocks``/``backward_blocks`` run a range of the blocks (the final norm goes
    with the last block): joint mode runs the trunk once per example and the branch per stream.
    """

    def __init__(self, num_layers, d_model, num_heads, d_ff, rng, dropout=0.0, norm_first=True,
                 activation_name="gelu", dtype="float32", task=NO_TASK_MODULE, task_layers=None):
        super().__init__()
        check_positive_integer(num_layers, "num_layers")
        first_task_layer = 0 if task_layers is None else num_layers - task_layers
        self.blocks = [TransformerBlock(d_model, num_heads, d_ff, rng, dropout, norm_first, activation_name, dtype,
                                        task if i >= first_task_layer else NO_TASK_MODULE)
                       for i in range(num_layers)]
        self.final_norm = LayerNorm(d_model, dtype=dtype) if norm_first else None

    def forward(self, x, mask=None, tasks=None):
        return self.forward_blocks(x, mask, 0, len(self.blocks), tasks)

    def backward(self, dout):
        return self.backward_blocks(dout, 0, len(self.blocks))

    def forward_blocks(self, x, mask, start, stop, tasks=None):
        """Blocks start..stop-1 on x (the final norm too when stop = L)."""
        for block in self.blocks[start:stop]:
            x = block(x, mask, tasks if block.task_module != "none" else None)
        self.keep(True)   # the blocks keep the values; this makes backward-before-forward name Encoder
        if stop == len(self.blocks) and self.final_norm is not None:
            return self.final_norm(x)
        return x

    def backward_blocks(self, dout, start, stop):
        self.saved()
        if stop == len(self.blocks) and self.final_norm is not None:
            dout = self.final_norm.backward(dout)
        for block in reversed(self.blocks[start:stop]):
            dout = block.backward(dout)
        return dout
