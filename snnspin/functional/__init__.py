"""Pure math of the neuron models: vector fields, exact updates and steppers (no state).

Every function takes tensors and plain numbers and returns tensors; units are ns for
time, 1/ns for rates (γ, I) and MHz for the filter's cut-off frequency.
"""

from .ctrnn import ctrnn_exact, ctrnn_rate, ctrnn_step
from .exponential import expm1_ratio
from .highpass import cutoff_rate, highpass_step
from .oscillator import (
    logistic_coefficients,
    oscillator_exact,
    oscillator_rate,
    oscillator_rate_bound,
    oscillator_rest,
    oscillator_step,
)
from .steppers import METHODS, advance, euler_step, rk4_step, warn_if_unstable

__all__ = [
    "METHODS",
    "advance",
    "ctrnn_exact",
    "ctrnn_rate",
    "ctrnn_step",
    "cutoff_rate",
    "euler_step",
    "expm1_ratio",
    "highpass_step",
    "logistic_coefficients",
    "oscillator_exact",
    "oscillator_rate",
    "oscillator_rate_bound",
    "oscillator_rest",
    "oscillator_step",
    "rk4_step",
    "warn_if_unstable",
]
