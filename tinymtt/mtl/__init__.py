"""Multi-task learning strategies: loss weighting and gradient combination, each derived by hand.

    pure rules      pcgrad, pcgrad_projected, mgda, mgda_weights, cagrad, cagrad_weights   (T, P) -> (P,) / (T,)
                    uncertainty_forward/backward, dwa_weights, gradnorm_targets/forward/backward
    strategies      make_strategy(name, num_tasks, **options), STRATEGIES: one interface the trainer calls
    gradients       task_gradients(model) -> G (T, P), set_gradients(model, d)

The functions ``pcgrad``, ``mgda`` and ``cagrad`` share their modules' names, so
as attributes of this package those names are the functions; reach the
modules' other names with ``from tinymtt.mtl.pcgrad import partner_order``.
"""

from .cagrad import cagrad, cagrad_weights
from .diagnostics import ConflictLog, conflict_record, gradient_conflict, plot_conflict
from .gradient_strategies import CAGrad, GradNorm, MGDA, PCGrad
from .gradients import parameter_slices, set_gradients, shared_parameter_names, task_gradients
from .mgda import mgda, mgda_weights
from .pcgrad import pcgrad, pcgrad_coefficients, pcgrad_projected
from .registry import STRATEGIES, make_strategy, strategy_options
from .simplex import gram_matrix
from .strategies import DynamicWeightAverage, Fixed, Strategy, Uncertainty
from .weighting import (dwa_weights, gradnorm_backward, gradnorm_forward, gradnorm_targets, uncertainty_backward,
                        uncertainty_forward)
