"""Layers: objects that own parameters and gradients (see module.py for the contract)."""

from .attention import MultiHeadAttention  # noqa: F401
from .basic import GELU, Dropout, Embedding, LayerNorm, Linear, ReLU, activation  # noqa: F401
from .heads import (RegressionHead, SequenceClassificationHead, TokenClassificationHead,  # noqa: F401
                    make_head)
from .module import Module  # noqa: F401
from .tasks import TaskAttention, TaskEncoder, one_hot  # noqa: F401
from .task_modules import TASK_MODULES, MixtureOfExperts, TaskLayerNorm, TaskLoRA  # noqa: F401
from .transformer import NO_TASK_MODULE, Encoder, FeedForward, TaskOptions, TransformerBlock  # noqa: F401
