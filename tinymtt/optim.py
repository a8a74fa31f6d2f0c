"""Optimizers (SGD, Adam, AdamW), gradient clipping and learning-rate schedules.

Parameters and gradients are flat dicts with the same keys, as the model gives
them (``model.parameters()``, ``model.gradients()``; names like
``"blocks.0.attn.wq"``). An optimizer updates the parameter arrays *in place*,
so the layers that own them see the change; there is no autograd here.

A training step, with a schedule::

    optimizer = AdamW(model.parameters(), lr=3e-4)
    schedule = WarmupCosine(3e-4, warmup_steps=100, total_steps=2000)
    ...
    clip_grad_norm(model.gradients(), max_norm=1.0)
    optimizer.lr = schedule(optimizer.step_count + 1)   # steps count from 1
    optimizer.step(model.gradients())

``state_dict()`` is a flat dict of arrays and plain numbers (no Python
objects), so a checkpoint is an ``.npz`` plus JSON, no pickle; loading it
resumes bit-exactly. State arrays keep the dtype and device of their
parameter: float32 training stays float32.
"""

from __future__ import annotations

import math

import numpy

from .backend import array_module, blockwise, to_float
from .validation import (
    ShapeError,
    check_array,
    check_integer,
    check_number,
    check_same_module,
    describe,
)


def _plain(value):
    """A number from a loaded state dict: JSON gives int/float/bool, .npz gives 0-d arrays."""
    return value.item() if hasattr(value, "item") else value


class Optimizer:
    """What every optimizer shares: the parameters, ``lr``, the step count, the state.

    Subclasses set ``buffers`` (names of per-parameter state arrays, created as
    zeros like their parameter), ``_configure`` (validate and set the
    hyper-parameters) and ``_update`` (one parameter's update).
    """

    buffers: tuple = ()

    def __init__(self, params, **hyper):
        if not isinstance(params, dict) or not params:
            raise TypeError(f"params must be a non-empty dict name -> array, got {describe(params)}")
        for name, p in params.items():
            check_array(p, f"params[{name!r}]", kind="float")
        check_same_module(**{str(name): p for name, p in params.items()})
        if len({id(p) for p in params.values()}) != len(params):
            raise ValueError("params holds the same array under two names; it would be updated twice")
        self.params = params
        self.step_count = 0          # updates made so far; the next one is number step_count + 1
        self._configure(**hyper)
        self.state = {buffer: {name: array_module(p).zeros_like(p) for name, p in params.items()}
                      for buffer in self.buffers}

    @property
    def lr(self) -> float:
        """The learning rate of the next step (a schedule sets it before each step)."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = check_number(value, "lr")

    def _check_grads(self, grads):
        if not isinstance(grads, dict):
            raise TypeError(f"grads must be a dict name -> array with the keys of params, got {describe(grads)}")
        missing = [name for name in self.params if name not in grads]
        if missing:
            raise KeyError(f"grads has no gradient for parameter(s) {missing}")
        unknown = [name for name in grads if name not in self.params]
        if unknown:
            raise KeyError(f"grads has gradient(s) for unknown parameter(s) {unknown}")
        for name, p in self.params.items():
            g = check_array(grads[name], f"grads[{name!r}]", kind="float")
            if g.shape != p.shape or g.dtype != p.dtype:
                raise ShapeError(f"grads[{name!r}] must match its parameter, a {describe(p)}, got {describe(g)}")
            check_same_module(**{f"params[{name!r}]": p, f"grads[{name!r}]": g})

    def step(self, grads):
        """Update every parameter in place from ``grads`` (same keys; grads are not modified)."""
        self._check_grads(grads)
        self.step_count += 1
        for name, p in self.params.items():
            self._update(p, grads[name], {buffer: self.state[buffer][name] for buffer in self.buffers})

    def lookahead(self, grads, lr=None) -> dict:
        """{name: the value ``step`` would give that parameter from ``grads``}, for the names in grads only.

        Nothing changes: not the parameters, not the state, not the step count.
        It runs the optimizer's own update on copies, so it is exactly the step
        that ``step`` would take (TAG's lookahead, tinymtt.mtl.affinity).
        lr: the learning rate to use (default: the current ``lr``).
        """
        if not isinstance(grads, dict):
            raise TypeError(f"grads must be a dict name -> array, got {describe(grads)}")
        unknown = [name for name in grads if name not in self.params]
        if unknown:
            raise KeyError(f"grads has gradient(s) for unknown parameter(s) {unknown}")
        for name, g in grads.items():
            p = self.params[name]
            if check_array(g, f"grads[{name!r}]", kind="float").shape != p.shape or g.dtype != p.dtype:
                raise ShapeError(f"grads[{name!r}] must match its parameter, a {describe(p)}, got {describe(g)}")
        lr_before, count_before = self._lr, self.step_count
        try:
            if lr is not None:
                self.lr = lr
            self.step_count += 1                 # the update of the next step, number step_count + 1
            moved = {}
            for name, g in grads.items():
                p = self.params[name].copy()
                self._update(p, g, {buffer: self.state[buffer][name].copy() for buffer in self.buffers})
                moved[name] = p
        finally:
            self._lr, self.step_count = lr_before, count_before
        return moved

    def hyperparameters(self) -> dict:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Flat dict: hyper-parameters and ``step`` as plain numbers, ``<buffer>.<param>`` arrays (copies)."""
        state = {"step": self.step_count, **self.hyperparameters()}
        for buffer in self.buffers:
            for name, array in self.state[buffer].items():
                state[f"{buffer}.{name}"] = array.copy()
        return state

    def load_state_dict(self, state):
        """Restore a ``state_dict()`` exactly; arrays may come from the host (an .npz) and are moved."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from state_dict(), got {describe(state)}")
        expected = set(self.state_dict())
        missing, unknown = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unknown:
            raise KeyError(f"state does not fit this {type(self).__name__}: missing keys {missing}, "
                           f"unknown keys {unknown}")
        arrays = {}
        for buffer in self.buffers:
            for name, p in self.params.items():
                key = f"{buffer}.{name}"
                value = check_array(state[key], f"state[{key!r}]", kind="float")
                if value.shape != p.shape or value.dtype != p.dtype:
                    raise ShapeError(f"state[{key!r}] must match its parameter, a {describe(p)}, got {describe(value)}")
                arrays[key] = array_module(p).array(value, dtype=p.dtype)   # a copy, on p's device
        step_count = check_integer(_plain(state["step"]), "state['step']")
        previous = self.hyperparameters()
        try:
            self._configure(**{key: _plain(state[key]) for key in previous})
        except ValueError:
            self._configure(**previous)      # all or nothing: a bad state leaves the optimizer as it was
            raise
        self.step_count = step_count
        for key, array in arrays.items():
            buffer, name = key.split(".", 1)
            self.state[buffer][name] = array

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({len(self.params)} parameters, {settings}, step_count={self.step_count})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov and L2 weight decay.

    At step t, for each parameter p with gradient g (as torch.optim.SGD, dampening 0):
        g ← g + λ·p                        -- weight decay λ (L2 added to the gradient)
        b_t = μ·b_{t-1} + g,  b_0 = 0      -- momentum μ (so b_1 = g)
        d = g + μ·b_t if nesterov else b_t
        p ← p − lr·d                       -- with μ = 0: plain p ← p − lr·g
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)

    def _configure(self, lr, momentum, weight_decay, nesterov):
        self.lr = lr
        self.momentum = check_number(momentum, "momentum", high=1.0, high_open=True)
        self.weight_decay = check_number(weight_decay, "weight_decay")
        if not isinstance(nesterov, bool) and nesterov not in (0, 1):
            raise ValueError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0.0")
        self.nesterov = bool(nesterov)
        self.buffers = ("momentum_buffer",) if self.momentum > 0.0 else ()

    def hyperparameters(self):
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                "nesterov": self.nesterov}

    def _update(self, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p              # a new array: the caller's grads stay as they were
        if self.momentum:
            buffer = state["momentum_buffer"]
            buffer *= self.momentum
            buffer += g
            g = g + self.momentum * buffer if self.nesterov else buffer
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with optional L2 weight decay added to the gradient (as torch.optim.Adam).

    At step t = 1, 2, ..., for each parameter p with gradient g:
        g ← g + λ·p                               -- L2 weight decay λ
        m_t = β1·m_{t-1} + (1 − β1)·g             -- first moment,  m_0 = 0
        v_t = β2·v_{t-1} + (1 − β2)·g²            -- second moment, v_0 = 0
        m̂ = m_t / (1 − β1^t),  v̂ = v_t / (1 − β2^t)   -- bias corrections (zero start)
        p ← p − lr·m̂ / (√v̂ + ε)
    The corrections are Python floats, so float32 state stays float32.
    """

    buffers = ("m", "v")
    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        super().__init__(params, lr=lr, beta1=betas[0], beta2=betas[1], eps=eps, weight_decay=weight_decay)

    def _configure(self, lr, beta1, beta2, eps, weight_decay):
        self.lr = lr
        self.betas = (check_number(beta1, "betas[0] (beta1)", high=1.0, high_open=True),
                      check_number(beta2, "betas[1] (beta2)", high=1.0, high_open=True))
        self.eps = check_number(eps, "eps", low_open=True)      # eps > 0: no 0/0 where v = 0
        self.weight_decay = check_number(weight_decay, "weight_decay")

    def hyperparameters(self):
        return {"lr": self.lr, "beta1": self.betas[0], "beta2": self.betas[1], "eps": self.eps,
                "weight_decay": self.weight_decay}

    def _update(self, p, g, state):
        t = self.step_count
        step_size = self.lr / (1.0 - self.betas[0] ** t)             # lr / (1 − β1^t), folds in m̂
        v_correction = 1.0 / math.sqrt(1.0 - self.betas[1] ** t)      # 1 / √(1 − β2^t), folds in v̂
        # element by element: the update runs in blocks of rows, on every core (tinymtt.backend.blockwise)
        blockwise(self._update_block, p, g, state["m"], state["v"], whole=(step_size, v_correction))

    def _update_block(self, p, g, m, v, step_size, v_correction):
        xp = array_module(p)
        beta1, beta2 = self.betas
        if self.weight_decay:
            if self.decoupled:
                p *= 1.0 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        # m and v are ours: update them in place; one scratch array serves every temporary
        scratch = xp.multiply(g, g, out=xp.empty_like(p))
        scratch *= 1.0 - beta2
        v *= beta2
        v += scratch                                           # v = β2·v + (1 − β2)·g²
        m *= beta1
        m += xp.multiply(g, 1.0 - beta1, out=scratch)          # m = β1·m + (1 − β1)·g
        denominator = xp.sqrt(v, out=scratch)
        denominator *= v_correction
        denominator += self.eps                                # √v̂ + ε
        update = xp.divide(m, denominator, out=scratch)
        update *= step_size
        p -= update


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter; as torch.optim.AdamW).

    The decay shrinks the parameter directly instead of entering the moments:
        p ← p − lr·λ·p                            -- before the Adam step
        then m, v, m̂, v̂ and p ← p − lr·m̂ / (√v̂ + ε) as in Adam, from the raw g.
    """

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def _check_grad_dict(grads):
    if not isinstance(grads, dict):
        raise TypeError(f"grads must be a dict name -> array, got {describe(grads)}")
    for name, g in grads.items():
        check_array(g, f"grads[{name!r}]", kind="float")
    check_same_module(**{str(name): g for name, g in grads.items()})


def global_grad_norm(grads) -> float:
    """‖g‖ = √(Σ over every gradient array of Σ g²): the norm of all gradients as one vector."""
    _check_grad_dict(grads)
    if not grads:
        return 0.0
    xp = array_module(*grads.values())
    # An overflow makes the norm inf, which the caller reports (the trainer stops with the reason): no warning too.
    with numpy.errstate(over="ignore", invalid="ignore"):
        norms = xp.stack([xp.sqrt(xp.sum(g * g)) for g in grads.values()])   # one device→host copy at the end
        return to_float(xp.sqrt(xp.sum(norms * norms)))


def clip_grad_norm(grads, max_norm, error_if_nonfinite=False) -> float:
    """Scale all gradients in place so their global norm is at most ``max_norm``.

    Returns the global norm *before* clipping. As torch.nn.utils.clip_grad_norm_:
    with c = max_norm / (‖g‖ + 1e-6), every g is multiplied by c when c < 1
    (so a norm within 1e-6 of max_norm is still scaled a hair). A non-finite
    norm raises a ValueError when error_if_nonfinite is True.
    """
    max_norm = check_number(max_norm, "max_norm", low_open=True)
    norm = global_grad_norm(grads)
    if error_if_nonfinite and not math.isfinite(norm):
        raise ValueError(f"the global gradient norm is {norm}: some gradient holds inf or NaN")
    coefficient = max_norm / (norm + 1e-6)
    if coefficient < 1.0:
        for g in grads.values():
            g *= coefficient
    return norm


class Constant:
    """lr(step) = lr for every step (steps count from 1)."""

    def __init__(self, lr):
        self.lr = check_number(lr, "lr")

    def __call__(self, step) -> float:
        check_integer(step, "step", low=1)
        return self.lr

    def __repr__(self):
        return f"Constant(lr={self.lr})"


class WarmupCosine:
    """Linear warmup to ``base_lr``, then cosine decay to ``min_lr``; steps count from 1.

    With W = warmup_steps and N = total_steps, for step s = 1, 2, ...:
        s ≤ W:      lr = base_lr · s / W                       (base_lr at s = W)
        W < s < N:  lr = min_lr + (base_lr − min_lr) · ½(1 + cos(π·(s − W)/(N − W)))
        s ≥ N:      lr = min_lr
    """

    def __init__(self, base_lr, warmup_steps, total_steps, min_lr=0.0):
        self.base_lr = check_number(base_lr, "base_lr")
        self.warmup_steps = check_integer(warmup_steps, "warmup_steps")
        self.total_steps = check_integer(total_steps, "total_steps", low=1)
        if self.warmup_steps > self.total_steps:
            raise ValueError(f"warmup_steps must be <= total_steps ({self.total_steps}), got {warmup_steps}")
        self.min_lr = check_number(min_lr, "min_lr", high=self.base_lr)

    def __call__(self, step) -> float:
        step = check_integer(step, "step", low=1)
        if step <= self.warmup_steps:
            return self.base_lr * step / self.warmup_steps
        if step >= self.total_steps:
            return self.min_lr
        progress = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def __repr__(self):
        return (f"WarmupCosine(base_lr={self.base_lr}, warmup_steps={self.warmup_steps}, "
                f"total_steps={self.total_steps}, min_lr={self.min_lr})")


class InverseSqrt:
    """The schedule of "Attention Is All You Need"; steps count from 1.

        lr = scale · d_model^-0.5 · min(s^-0.5, s · W^-1.5)
    Linear growth for the first W = warmup_steps steps, then decay as 1/√s; the
    peak, at s = W, is scale · (d_model · W)^-0.5.
    """

    def __init__(self, d_model, warmup_steps, scale=1.0):
        self.d_model = check_integer(d_model, "d_model", low=1)
        self.warmup_steps = check_integer(warmup_steps, "warmup_steps", low=1)
        self.scale = check_number(scale, "scale", low_open=True)

    def __call__(self, step) -> float:
        step = check_integer(step, "step", low=1)
        return self.scale * self.d_model ** -0.5 * min(step ** -0.5, step * self.warmup_steps ** -1.5)

    def __repr__(self):
        return f"InverseSqrt(d_model={self.d_model}, warmup_steps={self.warmup_steps}, scale={self.scale})"
