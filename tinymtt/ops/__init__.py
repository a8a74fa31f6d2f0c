"""Pure functions, one forward/backward pair per operation.

``out, cache = op_forward(...)`` and ``grads = op_backward(dout, cache)``; no
state, no parameters owned. Every op takes its array module from its inputs,
so the same function runs on NumPy and on CuPy arrays.
"""

from .linear import linear_backward, linear_forward  # noqa: F401
