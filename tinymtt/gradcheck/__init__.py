"""Gradient checking: is a hand-written backward pass right, and if not, where?

Read in this order, each module using only those before it:

    numeric       central differences and the relative error; the tolerances and what they mean
    hints         why a gradient is wrong: a factor, a transpose, a missing batch sum, ...
    checks        check_op / check_backward: one op's every input, with the verdict
    whole_model   directional_check / coordinate_check: a whole model in a few forward passes
    suite         run_checks: every op, layer and model of tinymtt (``tinymtt gradcheck``)

This package's face holds the first four; ``tinymtt.gradcheck.suite`` builds
tinymtt's own layers and model, so it is imported by name.
"""

from .checks import CheckResult, InputCheck, check_backward, check_op
from .numeric import (FLOOR_FRACTION, MODEL_TOLERANCE, STEP, SURELY_WRONG, THRESHOLDS, TOLERANCE,
                      numerical_gradient, numerical_gradient_array, rel_error)
from .whole_model import DirectionalCheck, coordinate_check, directional_check

__all__ = ["CheckResult", "DirectionalCheck", "FLOOR_FRACTION", "InputCheck", "MODEL_TOLERANCE", "STEP",
           "SURELY_WRONG", "THRESHOLDS", "TOLERANCE", "check_backward", "check_op", "coordinate_check",
           "directional_check", "numerical_gradient", "numerical_gradient_array", "rel_error"]
