"""Checking a whole model's gradients in a few forward passes: directions, then sampled coordinates.

``directional_check(f, params, grads)`` compares the directional derivative
along random directions (two forward passes each) with ``Σ <grad, u>``, as
Chainer's ``check_backward`` does; ``coordinate_check`` adds central
differences at a few sampled coordinates of every parameter, which names the
parameter that is wrong.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from ..backend import array_module, to_numpy
from .numeric import FLOOR_FRACTION, MODEL_TOLERANCE, STEP, require_float64, scalar_value

class DirectionalCheck(NamedTuple):
    numeric: float
    analytic: float
    error: float


def _check_model_inputs(params: dict, grads: dict):
    missing = sorted(set(params) - set(grads))
    if missing:
        raise KeyError(f"grads lacks entries for parameters {missing}")
    for key, p in params.items():
        require_float64(p, f"parameter {key!r}")
        if tuple(numpy.shape(grads[key])) != tuple(p.shape):
            raise ValueError(f"grads[{key!r}] must have the parameter's shape {tuple(p.shape)}, "
                             f"got {tuple(numpy.shape(grads[key]))}")


def directional_check(f, params: dict, grads: dict, num_directions=3, *, h=STEP, seed=0,
                      tolerance=MODEL_TOLERANCE):
    """Check a whole model's gradients along random directions (Chainer style).

    f() -> scalar loss computed from ``params`` (a dict of float64 arrays that
    this function perturbs in place and restores bit for bit). For a random
    direction u (one array per parameter, unit norm overall) the numeric
    directional derivative ``(f(p + h·u) - f(p - h·u)) / 2h`` -- two forward
    passes -- must equal ``Σ_k <grads[k], u_k>``. A wrong gradient anywhere
    shows up in every direction with probability 1.

    Returns (passed, [DirectionalCheck, ...]).
    """
    _check_model_inputs(params, grads)
    rng = numpy.random.default_rng(seed)
    saved = {k: p.copy() for k, p in params.items()}
    results = []
    try:
        for _ in range(num_directions):
            raw = {k: rng.standard_normal(numpy.shape(p)) for k, p in params.items()}
            norm = numpy.sqrt(sum(float((u * u).sum()) for u in raw.values())) or 1.0
            directions = {k: array_module(params[k]).asarray(u / norm, dtype=params[k].dtype)
                          for k, u in raw.items()}
            analytic = sum(scalar_value(array_module(grads[k]).sum(grads[k] * u)) for k, u in directions.items())
            for k, u in directions.items():
                params[k][...] = saved[k] + h * u
            plus = scalar_value(f())
            for k, u in directions.items():
                params[k][...] = saved[k] - h * u
            minus = scalar_value(f())
            numeric = (plus - minus) / (2 * h)
            error = abs(numeric - analytic) / max(abs(numeric) + abs(analytic), 1e-300)
            if error != error:  # NaN loss
                error = math.inf
            results.append(DirectionalCheck(numeric, analytic, error))
    finally:
        for k in params:
            params[k][...] = saved[k]
    return all(r.error <= tolerance for r in results), results


def coordinate_check(f, params: dict, grads: dict, per_param=2, *, h=STEP, seed=0,
                     tolerance=MODEL_TOLERANCE):
    """Central differences at a few sampled coordinates of every parameter.

    Complements ``directional_check``: a directional derivative sums over all
    parameters, so this one names the parameter that is wrong.
    Returns (passed, {name: worst rel. error}).
    """
    _check_model_inputs(params, grads)
    rng = numpy.random.default_rng(seed)
    host_grads = {key: to_numpy(grads[key]) for key in params}
    # The floor comes from the whole model's gradient scale, not the parameter's:
    # some parameters have a true gradient of zero (a key bias shifts every score
    # of a softmax row equally), and there only rounding noise is left to compare.
    scale = max((float(numpy.abs(g).max()) for g in host_grads.values() if g.size), default=0.0)
    worst = {}
    for key, p in params.items():
        grad = host_grads[key]
        errors = []
        for _ in range(min(per_param, p.size)):
            index = tuple(int(rng.integers(s)) for s in p.shape)
            original = p[index].copy()
            try:
                p[index] = original + h
                plus = scalar_value(f())
                p[index] = original - h
                minus = scalar_value(f())
            finally:
                p[index] = original
            numeric = (plus - minus) / (2 * h)
            analytic = float(grad[index])
            denominator = max(abs(numeric) + abs(analytic), FLOOR_FRACTION * scale, 1e-300)
            error = abs(numeric - analytic) / denominator
            errors.append(math.inf if error != error else error)
        worst[key] = max(errors, default=0.0)
    return all(e <= tolerance for e in worst.values()), worst
