"""Pure functions, one forward/backward pair per operation.

``out, cache = op_forward(...)`` and ``grads = op_backward(dout, cache)``; no
state, no parameters owned. Every op takes its array module from its inputs,
so the same function runs on NumPy and on CuPy arrays.
"""

from .linear import linear_backward, linear_forward  # noqa: F401
from .embedding import embedding_backward, embedding_forward, positional_encoding  # noqa: F401
from .activations import gelu_backward, gelu_forward, relu_backward, relu_forward  # noqa: F401
from .dropout import dropout_backward, dropout_forward  # noqa: F401
from .softmax import log_softmax_backward, log_softmax_forward, softmax_backward, softmax_forward  # noqa: F401
from .layernorm import layernorm_backward, layernorm_forward  # noqa: F401
from .losses import cross_entropy_backward, cross_entropy_forward, mse_backward, mse_forward, weighted_sum_backward, weighted_sum_forward  # noqa: F401
from .split_heads import merge_heads_backward, merge_heads_forward, split_heads_backward, split_heads_forward  # noqa: F401
from .attention import attention_backward, attention_forward  # noqa: F401
from .masks import causal_mask, padding_mask  # noqa: F401
from .pooling import masked_mean_backward, masked_mean_forward  # noqa: F401
from .task_linear import task_linear_backward, task_linear_forward  # noqa: F401
