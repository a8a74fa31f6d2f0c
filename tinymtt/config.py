"""The model's configuration: plain dataclasses that round-trip through JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .nn.heads import KINDS
from .nn.task_modules import TASK_MODULES
from .validation import check_integer, check_positive_integer, check_probability

MODES = ("conditioned", "joint")


@dataclass
class TaskSpec:
    """One task: its name, its kind, and its output size (classes, or regression width)."""
    name: str
    kind: str
    num_outputs: int

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "." in self.name:
            raise ValueError(f"task name must be a non-empty string without dots, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        self.num_outputs = check_positive_integer(self.num_outputs, f"task {self.name!r}: num_outputs")
        if self.kind != "regression" and self.num_outputs < 2:
            raise ValueError(f"task {self.name!r}: a classification task needs num_outputs >= 2 classes, "
                             f"got {self.num_outputs}")


@dataclass
class ModelConfig:
    """Everything that defines a MultiTaskTransformer (names as in docs/DESIGN.md).

    Give exactly one of ``vocab_size`` (token inputs, B×S ids) and
    ``input_dim`` (continuous inputs, B×S×K, through a Linear).

    task_module: "none" | "task-norm" | "lora" | "mmoe" (docs/DESIGN.md, "Task modules"), sized by
    ``norm_embed_dim`` (task-norm's task embedding width d_e), ``lora_rank`` (r; ``lora_ffn`` puts LoRA on the FFN too) and ``num_experts`` (E).
    branch_layers: joint mode only, K in 1..L: the last K blocks run per task stream, the first L − K
    once per example (None = L, every block per stream).
    """
    tasks: list = field(default_factory=list)
    vocab_size: int | None = None
    input_dim: int | None = None
    max_len: int = 128
    d_model: int = 64
    num_heads: int = 4
    d_ff: int = 256
    num_layers: int = 2
    dropout: float = 0.0
    mode: str = "conditioned"
    norm_first: bool = True
    activation: str = "gelu"
    task_hidden: int | None = None
    task_attention_gate: bool = True
    causal: bool = False
    seed: int = 0
    dtype: str = "float32"
    task_module: str = "none"
    lora_rank: int = 4
    num_experts: int = 2
    norm_embed_dim: int = 8
    branch_layers: int | None = None
    lora_ffn: bool = False

    def __post_init__(self):
        self.tasks = [t if isinstance(t, TaskSpec) else TaskSpec(**t) for t in self.tasks]
        if not self.tasks:
            raise ValueError("tasks must list at least one task (name, kind, num_outputs)")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        if (self.vocab_size is None) == (self.input_dim is None):
            raise ValueError("give exactly one of vocab_size (token inputs) and input_dim (continuous inputs), "
                             f"got vocab_size={self.vocab_size!r}, input_dim={self.input_dim!r}")
        # integers are stored as Python ints: a NumPy integer would not go to JSON
        if self.vocab_size is not None:
            self.vocab_size = check_integer(self.vocab_size, "vocab_size", 1)
        if self.input_dim is not None:
            self.input_dim = check_integer(self.input_dim, "input_dim", 1)
        for name in ("max_len", "d_model", "num_heads", "d_ff", "num_layers"):
            setattr(self, name, check_integer(getattr(self, name), name, 1))
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model must be divisible by num_heads, got d_model={self.d_model}, "
                             f"num_heads={self.num_heads}")
        self.dropout = check_probability(self.dropout, "dropout")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.activation not in ("gelu", "relu"):
            raise ValueError(f"activation must be 'gelu' or 'relu', got {self.activation!r}")
        if self.task_hidden is not None:
            self.task_hidden = check_integer(self.task_hidden, "task_hidden", 1)
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        self.seed = check_integer(self.seed, "seed", 0)
        if self.task_module not in TASK_MODULES:
            raise ValueError(f"task_module must be one of {TASK_MODULES}, got {self.task_module!r}")
        if not isinstance(self.lora_ffn, bool) or (self.lora_ffn and self.task_module != "lora"):
            raise ValueError(f"lora_ffn (LoRA on the FFN too) must be True or False, and True needs "
                             f"task_module='lora'; got lora_ffn={self.lora_ffn!r} with task_module={self.task_module!r}")
        for name in ("lora_rank", "num_experts", "norm_embed_dim"):
            setattr(self, name, check_integer(getattr(self, name), name, 1))
        if self.branch_layers is not None:
            if self.mode != "joint":
                raise ValueError(f"branch_layers applies to joint mode only (conditioned mode has no task streams), "
                                 f"got branch_layers={self.branch_layers!r} with mode={self.mode!r}")
            branch = check_integer(self.branch_layers, "branch_layers", 1)
            if branch > self.num_layers:
                raise ValueError(f"branch_layers must lie in 1..num_layers={self.num_layers}, got {branch}")
            self.branch_layers = branch

    @property
    def trunk_layers(self) -> int:
        """Blocks that run once per example: L − K in joint mode with branch_layers K, else 0."""
        return self.num_layers - self.branch_layers if self.branch_layers is not None else 0

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def task_names(self) -> list:
        return [t.name for t in self.tasks]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known keys: {sorted(known)}")
        return cls(**data)
