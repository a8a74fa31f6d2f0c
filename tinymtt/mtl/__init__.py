"""Multi-task learning strategies: loss weighting and gradient combination, each derived by hand.

    base            Strategy (the interface the trainer calls), GradientCombination
    one file each   fixed, uncertainty, dwa, gradnorm, pcgrad, mgda, cagrad:
                    the derivation, the pure rule (arrays in, arrays out), the strategy class
    registry        make_strategy(name, num_tasks, **options), STRATEGIES
    simplex         the Gram matrix and the Frank–Wolfe solver that PCGrad, MGDA and CAGrad share
    gradients       task_gradients(model) -> G (T, P), set_gradients(model, d)
    diagnostics     gradient conflict: cosines, norms, ConflictLog
    toy             the two-objective toy of the CAGrad paper

The functions ``pcgrad``, ``mgda`` and ``cagrad`` share their modules' names, so
as attributes of this package those names are the functions; reach the
modules' other names with ``from tinymtt.mtl.pcgrad import partner_order``.
"""

from .base import GradientCombination, Strategy
from .cagrad import CAGrad, cagrad, cagrad_weights
from .diagnostics import ConflictLog, conflict_record, gradient_conflict
from .dwa import DynamicWeightAverage, dwa_weights
from .fixed import Fixed
from .gradients import parameter_slices, set_gradients, shared_parameter_names, task_gradients
from .gradnorm import GradNorm, gradnorm_backward, gradnorm_forward, gradnorm_targets
from .mgda import MGDA, mgda, mgda_weights
from .pcgrad import PCGrad, pcgrad, pcgrad_coefficients, pcgrad_projected
from .registry import STRATEGIES, make_strategy, strategy_options
from .simplex import gram_matrix
from .uncertainty import Uncertainty, uncertainty_backward, uncertainty_forward
