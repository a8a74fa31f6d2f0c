"""The small layers: Linear, Embedding, LayerNorm, Dropout, and activations.

Each wraps one op pair from ``tinymtt.ops`` and owns its parameters; the math
and the derivations live in the op's docstring.
"""

from __future__ import annotations

import math

from .. import backend
from ..ops import (dropout_backward, dropout_forward, embedding_backward, embedding_forward,
                   gelu_backward, gelu_forward, layernorm_backward, layernorm_forward,
                   linear_backward, linear_forward, relu_backward, relu_forward)
from ..validation import check_positive_integer, check_probability
from .module import Module


def call_rng(seed, calls, xp):
    """A fresh device generator for one training call: seeded by (seed, call count)."""
    return backend.device_rng((seed * 1_000_003 + calls) % (2 ** 63), xp)


class Linear(Module):
    """out = x·W + b; W and b ~ U(-1/√in, 1/√in), PyTorch's default scale."""

    def __init__(self, in_features, out_features, rng, bias=True, dtype="float32"):
        super().__init__()
        check_positive_integer(in_features, "in_features")
        check_positive_integer(out_features, "out_features")
        bound = 1.0 / math.sqrt(in_features)
        self.add_param("weight", rng.uniform(-bound, bound, (in_features, out_features)), dtype)
        if bias:
            self.add_param("bias", rng.uniform(-bound, bound, (out_features,)), dtype)

    def forward(self, x):
        out, cache = linear_forward(x, self.params["weight"], self.params.get("bias"))
        self.keep(cache)
        return out

    def backward(self, dout):
        dx, dw, db = linear_backward(dout, self.saved())
        self.grads["weight"] += dw
        if db is not None:
            self.grads["bias"] += db
        return dx


class Embedding(Module):
    """Token lookup table E (V, D); ids are range-checked before indexing."""

    def __init__(self, num_embeddings, dim, rng, dtype="float32"):
        super().__init__()
        check_positive_integer(num_embeddings, "num_embeddings")
        check_positive_integer(dim, "dim")
        self.add_param("weight", rng.standard_normal((num_embeddings, dim)) / math.sqrt(dim), dtype)

    def forward(self, ids):
        out, cache = embedding_forward(ids, self.params["weight"])
        self.keep(cache)
        return out

    def backward(self, dout):
        """Accumulates dE; token ids have no gradient, so it returns None."""
        self.grads["weight"] += embedding_backward(dout, self.saved())
        return None


class LayerNorm(Module):
    """Normalise over the last axis, then scale by γ (ones) and shift by β (zeros)."""

    def __init__(self, dim, eps=1e-5, dtype="float32"):
        super().__init__()
        check_positive_integer(dim, "dim")
        self.eps = eps
        self.add_param("gamma", [1.0] * dim, dtype)
        self.add_param("beta", [0.0] * dim, dtype)

    def forward(self, x):
        out, cache = layernorm_forward(x, self.params["gamma"], self.params["beta"], self.eps)
        self.keep(cache)
        return out

    def backward(self, dout):
        dx, dgamma, dbeta = layernorm_backward(dout, self.saved())
        self.grads["gamma"] += dgamma
        self.grads["beta"] += dbeta
        return dx


class Dropout(Module):
    """Inverted dropout, active in train mode only.

    Each training call draws its mask from a fresh generator seeded by
    (seed, call count), so a run is reproducible and resumes exactly from the
    count alone (``state``/``set_state``).
    """

    def __init__(self, p, seed=0):
        super().__init__()
        self.p = check_probability(p, "dropout")
        self.seed = int(seed)
        self.calls = 0

    def forward(self, x):
        train = self.training and self.p > 0
        rng = None
        if train:
            rng = call_rng(self.seed, self.calls, backend.array_module(x))
            self.calls += 1
        out, cache = dropout_forward(x, self.p, rng, train)
        self.keep(cache)
        return out

    def backward(self, dout):
        return dropout_backward(dout, self.saved())


class ReLU(Module):
    def forward(self, x):
        out, cache = relu_forward(x)
        self.keep(cache)
        return out

    def backward(self, dout):
        return relu_backward(dout, self.saved())


class GELU(Module):
    """GELU, tanh form (as in GPT-2 and docs/DESIGN.md)."""

    def forward(self, x):
        out, cache = gelu_forward(x)
        self.keep(cache)
        return out

    def backward(self, dout):
        return gelu_backward(dout, self.saved())


def activation(name):
    """The activation layer for a config string: 'gelu' or 'relu'."""
    layers = {"gelu": GELU, "relu": ReLU}
    if name not in layers:
        raise ValueError(f"activation must be one of {sorted(layers)}, got {name!r}")
    return layers[name]()
