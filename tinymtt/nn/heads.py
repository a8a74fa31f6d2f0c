"""Task heads: each turns the encoder output into one task's prediction and loss.

* token classification:    logits_bs = h_bs·W + b           CE over real tokens
* sequence classification: z_b = masked_mean_s(h_bs);  logits_b = z_b·W + b   CE
* regression:              z_b = masked_mean_s(h_bs);  y_b = z_b·W + b        MSE

``present`` (B,) marks the examples that have this task's target (the others
-- other tasks' examples in conditioned mode, missing targets in joint mode --
are masked out of the mean, never counted as zero loss).
"""

from __future__ import annotations

from ..backend import array_module
from ..ops import (cross_entropy_backward, cross_entropy_forward, masked_mean_backward,
                   masked_mean_forward, mse_backward, mse_forward)
from ..validation import check_array, check_positive_integer, check_shape
from .basic import Linear
from .module import Module

class _Head(Module):
    """forward(h, mask) -> outputs; loss(outputs, targets, mask, present) -> loss;
    backward(dloss) -> dh (through the loss and the head)."""

    def __init__(self, d_model, num_outputs, rng, dtype="float32"):
        super().__init__()
        self.num_outputs = check_positive_integer(num_outputs, "num_outputs")
        self.linear = Linear(d_model, num_outputs, rng, dtype=dtype)
        self._loss_cache = None

    @staticmethod
    def check_present(outputs, present):
        """present (B,) bool; None = every example has this task's target."""
        if present is None:
            return array_module(outputs).ones(outputs.shape[0], dtype=bool)
        check_array(present, "present", ndim=1, kind="bool")
        return check_shape(present, "present", (outputs.shape[0],), "(B,)")

    def backward(self, dloss):
        if self._loss_cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward was called before loss: run forward and loss first")
        return self.backward_outputs(self._loss_backward(dloss, self._loss_cache))


class TokenClassificationHead(_Head):
    kind = "token"

    def forward(self, h, mask=None):
        self.keep(True)
        return self.linear(h)                                  # (B, S, C)

    def loss(self, logits, targets, mask=None, present=None):
        present = self.check_present(logits, present)
        counted = array_module(logits).broadcast_to(present[:, None], logits.shape[:2])
        if mask is not None:   # None = every position is a real token
            check_array(mask, "mask", ndim=2, kind="bool")
            check_shape(mask, "mask", logits.shape[:2], "(B, S)")
            counted = mask & counted
        loss, self._loss_cache = cross_entropy_forward(logits, targets, counted)
        return loss

    _loss_backward = staticmethod(cross_entropy_backward)

    def backward_outputs(self, dlogits):
        self.saved()
        return self.linear.backward(dlogits)


class _PooledHead(_Head):
    def forward(self, h, mask=None):
        pooled, cache = masked_mean_forward(h, mask)
        self.keep(cache)
        return self.linear(pooled)                             # (B, C) or (B, K)

    def backward_outputs(self, doutputs):
        return masked_mean_backward(self.linear.backward(doutputs), self.saved())


class SequenceClassificationHead(_PooledHead):
    kind = "sequence"

    def loss(self, logits, targets, mask=None, present=None):
        present = self.check_present(logits, present)
        loss, self._loss_cache = cross_entropy_forward(logits, targets, present)
        return loss

    _loss_backward = staticmethod(cross_entropy_backward)


class RegressionHead(_PooledHead):
    kind = "regression"

    def loss(self, values, targets, mask=None, present=None):
        present = self.check_present(values, present)
        loss, self._loss_cache = mse_forward(values, targets, present[:, None])
        return loss

    _loss_backward = staticmethod(mse_backward)


HEADS = {head.kind: head for head in (TokenClassificationHead, SequenceClassificationHead, RegressionHead)}
KINDS = tuple(HEADS)          # the task kinds: one per head ("token", "sequence", "regression")


def make_head(kind, d_model, num_outputs, rng, dtype="float32"):
    """The head of a task of this ``kind`` (one of KINDS)."""
    if kind not in HEADS:
        raise ValueError(f"task kind must be one of {KINDS}, got {kind!r}")
    return HEADS[kind](d_model, num_outputs, rng, dtype=dtype)
