"""Multi-task learning strategies: loss weighting and gradient combination, each derived by hand.

    base            Strategy (the interface the trainer calls), GradientCombination
    one file each   fixed, uncertainty, dwa, gradnorm, pcgrad, mgda, cagrad,
                    rlw, dbmtl, imtl, famo, nashmtl, alignedmtl, gradvac:
                    the derivation, the pure rule (arrays in, arrays out), the strategy class
    registry        make_strategy(name, num_tasks, **options), STRATEGIES
    simplex         the Gram matrix, and the Frank–Wolfe solver that MGDA and CAGrad share
    gradients       task_gradients(model) -> G (T, P), set_gradients(model, d)
    diagnostics     gradient conflict: cosines, norms, ConflictLog
    toy             the two-objective toy of the CAGrad paper

The functions ``pcgrad``, ``mgda``, ``cagrad``, ``dbmtl``, ``nashmtl``, ``alignedmtl``
and ``gradvac`` share their modules' names, so
as attributes of this package those names are the functions; reach the
modules' other names with ``from tinymtt.mtl.pcgrad import partner_order``.
"""

from .alignedmtl import AlignedMTL, aligned_gradients, alignedmtl, alignedmtl_coefficients
from .base import GradientCombination, Strategy
from .cagrad import CAGrad, cagrad, cagrad_weights
from .dbmtl import DualBalancing, dbmtl
from .diagnostics import ConflictLog, conflict_record, gradient_conflict
from .dwa import DynamicWeightAverage, dwa_weights
from .famo import FAMO, famo_logit_gradient, famo_weights
from .fixed import Fixed
from .gradients import parameter_slices, set_gradients, shared_parameter_names, task_gradients
from .gradnorm import GradNorm, gradnorm_backward, gradnorm_forward, gradnorm_targets
from .gradvac import GradVac, gradvac
from .imtl import IMTL, imtl_gradient, imtl_gradient_coefficients, imtl_loss_backward, imtl_loss_forward
from .mgda import MGDA, mgda, mgda_coefficients, mgda_weights
from .nashmtl import NashMTL, nashmtl, nashmtl_coefficients
from .pcgrad import PCGrad, pcgrad, pcgrad_coefficients, pcgrad_projected
from .registry import STRATEGIES, make_strategy, strategy_options
from .rlw import RandomLossWeighting, rlw_weights
from .simplex import gram_matrix
from .uncertainty import Uncertainty, uncertainty_backward, uncertainty_forward
