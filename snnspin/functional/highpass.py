"""High-pass filter on a neuron's output (Plouet et al. eq. 5).

    dy/dt = -ω_c y + dx/dt,      ω_c = 2π f_cut

With f_cut in MHz and t in ns, ω_c = 2π f_cut · 1e-3 per ns (1 MHz → 6.28e-3 /ns).
Given the filtered signal's samples x and x⁺ at the ends of a step of ``dt`` ns and
x varying linearly in between, the update is exact:

    y⁺ = y e^{-ω_c dt} + (x⁺ - x) (1 - e^{-ω_c dt}) / (ω_c dt)
"""

from __future__ import annotations

import math

import torch

from .exponential import expm1_ratio
from .params import HighPassParameters, cutoff_rate  # noqa: F401 (re-exported)


def highpass_step(y, x_prev, x_next, omega_c, dt):
    """One exact filter step (see module doc). Shapes broadcast; ω_c in 1/ns, dt in ns.

    >>> y = highpass_step(torch.tensor(0.0), torch.tensor(0.5), torch.tensor(0.7), 0.0, 1.0)
    >>> round(float(y), 6)  # no cut-off: y follows every change of x
    0.2
    """
    w = -omega_c * dt
    decay = math.exp(w) if not isinstance(w, torch.Tensor) else torch.exp(w)
    return y * decay + (x_next - x_prev) * expm1_ratio(w)


def highpass_update(y, x_prev, x_next, p: HighPassParameters):
    """One call of a filter layer with the constants of the record ``p`` (ω_c, dt).

    >>> p = HighPassParameters(torch.tensor(0.0))
    >>> highpass_update(torch.tensor(0.0), torch.tensor(0.5), torch.tensor(0.7), p)
    tensor(0.2000)
    """
    return highpass_step(y, x_prev, x_next, cutoff_rate(p.f_cut_mhz), p.dt)
