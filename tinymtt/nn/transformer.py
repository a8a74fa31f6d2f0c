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
"""

from __future__ import annotations

from ..validation import check_positive_integer
from .basic import Dropout, LayerNorm, Linear, activation
from .attention import MultiHeadAttention
from .module import Module


class FeedForward(Module):
    """Position-wise FFN: Linear(D→F), activation, Linear(F→D)."""

    def __init__(self, d_model, d_ff, rng, activation_name="gelu", dtype="float32"):
        super().__init__()
        self.linear1 = Linear(d_model, d_ff, rng, dtype=dtype)
        self.activation = activation(activation_name)
        self.linear2 = Linear(d_ff, d_model, rng, dtype=dtype)

    def forward(self, x):
        out = self.linear2(self.activation(self.linear1(x)))
        self.keep(True)   # the sub-layers keep the values; this makes backward-before-forward name FeedForward
        return out

    def backward(self, dout):
        self.saved()
        return self.linear1.backward(self.activation.backward(self.linear2.backward(dout)))


class TransformerBlock(Module):
    """One encoder block: self-attention and FFN sublayers with residuals.

    forward(x, mask=None): x (B, S, D), mask broadcastable to (B, H, S, S).
    """

    def __init__(self, d_model, num_heads, d_ff, rng, dropout=0.0, norm_first=True,
                 activation_name="gelu", dtype="float32"):
        super().__init__()
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, dtype=dtype)
        self.attn = MultiHeadAttention(d_model, num_heads, rng, dropout=dropout, dtype=dtype)
        self.dropout1 = Dropout(dropout, seed=int(rng.integers(2 ** 62)))
        self.norm2 = LayerNorm(d_model, dtype=dtype)
        self.ffn = FeedForward(d_model, d_ff, rng, activation_name, dtype=dtype)
        self.dropout2 = Dropout(dropout, seed=int(rng.integers(2 ** 62)))

    def forward(self, x, mask=None):
        if self.norm_first:
            h = x + self.dropout1(self.attn(self.norm1(x), mask=mask))
            out = h + self.dropout2(self.ffn(self.norm2(h)))
        else:
            h = self.norm1(x + self.dropout1(self.attn(x, mask=mask)))
            out = self.norm2(h + self.dropout2(self.ffn(h)))
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
    """L blocks; with pre-LN a final LayerNorm (the residual stream is never normalised otherwise)."""

    def __init__(self, num_layers, d_model, num_heads, d_ff, rng, dropout=0.0, norm_first=True,
                 activation_name="gelu", dtype="float32"):
        super().__init__()
        check_positive_integer(num_layers, "num_layers")
        self.blocks = [TransformerBlock(d_model, num_heads, d_ff, rng, dropout, norm_first, activation_name, dtype)
                       for _ in range(num_layers)]
        self.final_norm = LayerNorm(d_model, dtype=dtype) if norm_first else None

    def forward(self, x, mask=None):
        for block in self.blocks:
            x = block(x, mask)
        self.keep(True)   # the blocks keep the values; this makes backward-before-forward name Encoder
        return self.final_norm(x) if self.final_norm is not None else x

    def backward(self, dout):
        self.saved()
        if self.final_norm is not None:
            dout = self.final_norm.backward(dout)
        for block in reversed(self.blocks):
            dout = block.backward(dout)
        return dout
