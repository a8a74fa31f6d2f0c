"""Element-wise activations: ReLU and GELU (tanh form)."""

from __future__ import annotations

import math
from typing import NamedTuple

from ..backend import array_module, blockwise
from ..validation import check_array, check_shape

GELU_SCALE = math.sqrt(2.0 / math.pi)   # √(2/π)
GELU_CUBIC = 0.044715
# Beyond |x| = 1e4 the tanh is exactly ±1 in float32 and float64 (it already is
# past |x| ≈ 10), so clipping x there changes nothing but keeps x³ from
# overflowing to inf (and 0·inf from making a NaN in the backward pass).
_GELU_CLIP = 1e4


class ReluCache(NamedTuple):
    x: object   # (...) the input: its sign says where gradient flows


class GeluCache(NamedTuple):
    clipped: object  # (...) the input clipped to ±1e4 (where tanh(u) is ±1 already)
    tanh: object     # (...) tanh(u), u = √(2/π)(x + 0.044715x³)


def relu_forward(x):
    """out = max(x, 0), element-wise.

    x: (...) any shape, floating point
    returns out: same shape and dtype, cache
    """
    check_array(x, "x", kind="float")
    xp = array_module(x)
    out = xp.maximum(x, x.dtype.type(0))   # not x·(x > 0): that gives −inf·0 = NaN
    return out, ReluCache(x)


def relu_backward(dout, cache: ReluCache):
    """dx = dout · [x > 0]: gradient passes where the input was positive.

    At x = 0 exactly the subgradient 0 is used (as PyTorch does).
    """
    return dout * (cache.x > 0)


def gelu_forward(x):
    """GELU, tanh form: out = ½x(1 + tanh(u)),  u = √(2/π)(x + 0.044715x³).

    x: (...) any shape, floating point
    returns out: same shape and dtype, cache
    """
    check_array(x, "x", kind="float")
    xp = array_module(x)
    flat = x.reshape(-1)   # element-wise: any blocks of elements will do
    clipped, tanh, out = (xp.empty_like(flat) for _ in range(3))
    blockwise(_gelu_forward_kernel, flat, clipped, tanh, out)
    return out.reshape(x.shape), GeluCache(clipped.reshape(x.shape), tanh.reshape(x.shape))


def _gelu_forward_kernel(x, clipped, tanh, out):
    """The forward's math on one block, written into clipped, tanh and out (few passes, no temporaries)."""
    xp = array_module(x)
    xp.clip(x, -_GELU_CLIP, _GELU_CLIP, out=clipped)
    u = xp.multiply(clipped, clipped, out=tanh)
    u *= GELU_SCALE * GELU_CUBIC
    u += GELU_SCALE
    u *= clipped                       # u = √(2/π)(x + 0.044715x³)
    xp.tanh(u, out=tanh)
    xp.add(tanh, 1.0, out=out)
    out *= 0.5
    out *= x                           # ½x(1 + tanh u)


def gelu_backward(dout, cache: GeluCache):
    """Gradient of out = ½x(1 + t), t = tanh(u), u = √(2/π)(x + 0.044715x³).

    Product rule, with dt/du = 1 − t² and du/dx = √(2/π)(1 + 3·0.044715x²):
        dout/dx = ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 0.134145x²)
                = ½(1 + t + x·du/dx·(1 − t²))
        dx = dout · dout/dx
    (Where |x| > 1e4, t = ±1 exactly and the second term is 0; x is clipped
    there so x² cannot overflow into 0·inf = NaN.)
    """
    xp = array_module(dout)
    shape = cache.tanh.shape
    check_shape(dout, "dout", shape, "x's shape")
    flat_dout = dout.reshape(-1)      # a copy only if dout is not contiguous; never written
    dx = xp.empty_like(cache.tanh).reshape(-1)
    blockwise(_gelu_backward_kernel, flat_dout, cache.clipped.reshape(-1), cache.tanh.reshape(-1), dx)
    return dx.reshape(shape)


def _gelu_backward_kernel(dout, clipped, tanh, dx):
    """The backward's math on one block, written into dx."""
    xp = array_module(dout)
    local = xp.multiply(clipped, clipped, out=dx)
    local *= 3.0 * GELU_CUBIC * GELU_SCALE
    local += GELU_SCALE
    local *= clipped                   # x·du/dx
    sech_squared = tanh * tanh         # a block-sized temporary: it stays in the cache
    xp.subtract(1.0, sech_squared, out=sech_squared)   # 1 − t²
    local *= sech_squared
    local += tanh
    local += 1.0
    local *= 0.5                       # dout/dx
    local *= dout
