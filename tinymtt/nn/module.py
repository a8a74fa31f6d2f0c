"""The layer base class: parameters, gradients, train/eval, and the dotted names.

A layer (``Module``) owns two dicts with the same keys -- ``params`` (arrays)
and ``grads`` (arrays of the same shapes) -- and composes other layers as plain
attributes (or lists of layers). ``parameters()`` walks that tree and returns
one flat dict with dotted names (``blocks.0.attn.wq.weight``), so a state dict
is just that dict.

Conventions every layer follows:

* ``forward(...)`` computes the output and keeps what backward needs in
  ``self._cache`` (via ``self.keep``);
* ``backward(dout)`` *accumulates* (``+=``) into ``self.grads`` -- a layer used
  twice (shared weights across task streams) just sums its gradients -- and
  returns the gradient of its input;
* calling ``backward`` before ``forward`` is a clear error, not an
  AttributeError from a missing cache.
"""

from __future__ import annotations

import contextlib

from .. import backend


class Module:
    """Base class of every layer."""

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.training = True
        self._cache = None

    # -- parameters -------------------------------------------------------
    def add_param(self, name: str, host_value, dtype):
        """Register a parameter drawn on the host, moved to the current device."""
        value = backend.to_device(host_value, dtype=dtype)
        self.params[name] = value
        self.grads[name] = backend.array_module(value).zeros_like(value)
        return value

    def children(self):
        """(name, layer) for every sub-layer, in attribute order; lists give name.i."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for index, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}.{index}", item

    def named_modules(self, prefix=""):
        """(dotted name, layer) for this layer and every layer below it."""
        yield prefix, self
        for child_name, child in self.children():
            yield from child.named_modules(f"{prefix}.{child_name}" if prefix else child_name)

    def _flat(self, attribute) -> dict:
        """``self.<attribute>`` (params or grads) of every layer, by dotted name."""
        found = {}
        for prefix, layer in self.named_modules():
            for name, value in getattr(layer, attribute).items():
                found[f"{prefix}.{name}" if prefix else name] = value
        return found

    def parameters(self) -> dict:
        """Every parameter of this layer and its sub-layers, by dotted name."""
        return self._flat("params")

    def gradients(self) -> dict:
        """The gradients, with the same dotted names as ``parameters()``."""
        return self._flat("grads")

    def zero_grad(self):
        for grad in self.gradients().values():
            grad[...] = 0
        return self

    def num_parameters(self) -> int:
        return sum(int(p.size) for p in self.parameters().values())

    # -- modes ---------------------------------------------------------------
    def train(self, mode: bool = True):
        self.training = bool(mode)
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    @contextlib.contextmanager
    def evaluating(self):
        """Eval mode inside a ``with`` block; the mode it had comes back afterwards, even after an error::

            with model.evaluating():
                outputs = model.forward(batch)      # no dropout
        """
        was_training = self.training
        self.eval()
        try:
            yield self
        finally:
            self.train(was_training)

    @contextlib.contextmanager
    def restoring_state(self):
        """Inside a ``with`` block, extra forward passes may run; afterwards every layer's attributes
        are the objects they were before (caches, attention weights kept for plots, dropout counters),
        so a backward after the block differentiates the forward before it::

            with model.restoring_state():
                model.loss(other_batch)          # a look elsewhere; the step's caches come back

        Only the attributes are restored, not the contents of arrays: a block that writes into
        parameters or gradients puts them back itself (tinymtt.mtl.affinity does).
        """
        saved = [(layer, dict(vars(layer))) for _, layer in self.named_modules()]
        try:
            yield self
        finally:
            for layer, attributes in saved:
                vars(layer).clear()
                vars(layer).update(attributes)

    # -- the forward/backward contract -------------------------------------------
    def keep(self, cache):
        """Store what backward needs (called at the end of forward)."""
        self._cache = cache

    def saved(self):
        """What forward kept; a clear error when forward has not run."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward was called before forward: "
                               f"run forward first (backward needs the values forward keeps)")
        return self._cache

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def __repr__(self):
        return f"{type(self).__name__}({self.num_parameters()} parameters)"
