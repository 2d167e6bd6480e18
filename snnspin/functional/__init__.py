"""Pure math of the neuron models: vector fields, exact updates and steppers (no state).

Every function takes tensors and plain numbers and returns tensors; units are ns for
time, 1/ns for rates (γ, I) and MHz for the filter's cut-off frequency.
"""

from .ctrnn import ctrnn_exact, ctrnn_rate, ctrnn_step, ctrnn_update
from .exponential import expm1_ratio
from .highpass import highpass_step, highpass_update
from .oscillator import oscillator_exact, oscillator_rate, oscillator_rate_bound, oscillator_step, oscillator_update
from .params import (
    CTRNNParameters,
    HighPassParameters,
    OscillatorParameters,
    cutoff_rate,
    logistic_coefficients,
    oscillator_rest,
)
from .steppers import METHODS, advance, euler_step, rk4_step, warn_if_unstable

__all__ = [
    "CTRNNParameters",
    "HighPassParameters",
    "METHODS",
    "OscillatorParameters",
    "ctrnn_update",
    "highpass_update",
    "oscillator_update",
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
