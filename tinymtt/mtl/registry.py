"""Strategies by name: ``make_strategy("pcgrad", num_tasks)``, and the names ``tinymtt train --strategy`` accepts.

To add a strategy: write its file in this package (derivation, rule, class
with a ``name`` and its ``options``), then add its class to CLASSES below.
"""

from __future__ import annotations

from .alignedmtl import AlignedMTL
from .cagrad import CAGrad
from .dbmtl import DualBalancing
from .dwa import DynamicWeightAverage
from .famo import FAMO
from .fixed import Fixed
from .gradnorm import GradNorm
from .gradvac import GradVac
from .imtl import IMTL
from .mgda import MGDA
from .nashmtl import NashMTL
from .pcgrad import PCGrad
from .rlw import RandomLossWeighting
from .uncertainty import Uncertainty

CLASSES = (Fixed, Uncertainty, DynamicWeightAverage, GradNorm, PCGrad, MGDA, CAGrad,        # the order of --help
           RandomLossWeighting, DualBalancing, IMTL, FAMO, NashMTL, AlignedMTL, GradVac)
_BY_NAME = {cls.name: cls for cls in CLASSES}
STRATEGIES = tuple(_BY_NAME)          # fixed, uncertainty, dwa, gradnorm, pcgrad, mgda, cagrad, rlw, dbmtl, imtl,
#                                       famo, nashmtl, alignedmtl, gradvac


def strategy_class(name):
    """The class registered under ``name``; a ValueError listing the names otherwise."""
    if name not in _BY_NAME:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    return _BY_NAME[name]


def strategy_options(name) -> dict:
    """{option: default} of a strategy (what --strategy-option accepts)."""
    return dict(strategy_class(name).options)


def make_strategy(name, num_tasks, kinds=None, **options):
    """The strategy ``name`` for ``num_tasks`` tasks, with its options.

    kinds: each task's kind ("token", "sequence", "regression"), given to every
    strategy (uncertainty weighting gives regression tasks c_i = ½).
    An unknown option is a ValueError that lists the strategy's options.
    """
    cls = strategy_class(name)
    unknown = sorted(set(options) - set(cls.options))
    if unknown:
        known = ", ".join(f"{key} (default {value!r})" for key, value in cls.options.items()) or "none"
        raise ValueError(f"strategy {name!r} has no option {', '.join(unknown)}; its options: {known}")
    return cls(num_tasks, kinds=kinds, **options)
