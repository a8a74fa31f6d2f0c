"""Strategies by name: ``make_strategy("pcgrad", num_tasks)``, and the names ``tinymtt train --strategy`` accepts."""

from __future__ import annotations

from .gradient_strategies import CAGrad, GradNorm, MGDA, PCGrad
from .strategies import DynamicWeightAverage, Fixed, Uncertainty

_CLASSES = {cls.name: cls for cls in (Fixed, Uncertainty, DynamicWeightAverage, GradNorm, PCGrad, MGDA, CAGrad)}
STRATEGIES = tuple(_CLASSES)          # fixed, uncertainty, dwa, gradnorm, pcgrad, mgda, cagrad


def strategy_options(name) -> dict:
    """{option: default} of a strategy (what --strategy-option accepts)."""
    return dict(_strategy_class(name).options)


def _strategy_class(name):
    if name not in _CLASSES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    return _CLASSES[name]


def make_strategy(name, num_tasks, kinds=None, **options):
    """The strategy ``name`` for ``num_tasks`` tasks, with its options.

    kinds: each task's kind ("token", "sequence", "regression"); uncertainty
    weighting uses it (regression tasks get c_i = ½), the others ignore it.
    An unknown option is a ValueError that lists the strategy's options.
    """
    cls = _strategy_class(name)
    unknown = sorted(set(options) - set(cls.options))
    if unknown:
        known = ", ".join(f"{key} (default {value!r})" for key, value in cls.options.items()) or "none"
        raise ValueError(f"strategy {name!r} has no option {', '.join(unknown)}; its options: {known}")
    if cls is Uncertainty:
        options["kinds"] = kinds
    return cls(num_tasks, **options)
