"""Continuous-time RNN neuron, the software twin of the oscillator (Plouet et al. eq. 6-8).

    dx/dt = -γ x + I,        y = tanh(x)

t in ns, γ = 1/τ and I in 1/ns. Linear in x, so a held drive has the exact update
x⁺ = x e^{-γ dt} + I (1 - e^{-γ dt}) / γ.
"""

from __future__ import annotations

import torch

from .exponential import expm1_ratio
from .params import CTRNNParameters
from .steppers import advance


def ctrnn_rate(x, drive, gamma):
    """dx/dt = -γ x + I (1/ns).

    >>> float(ctrnn_rate(torch.tensor(1.0), torch.tensor(0.5), 0.5))
    0.0
    """
    return -gamma * x + drive


def ctrnn_exact(x, drive, gamma, dt):
    """x⁺ = x e^{-γ dt} + I dt F(-γ dt), with F(w) = (e^w - 1)/w; exact for a held drive.

    >>> x = torch.tensor(0.0, dtype=torch.float64)
    >>> round(float(ctrnn_exact(x, torch.tensor(1.0, dtype=torch.float64), 1.0, 1.0)), 10)
    0.6321205588
    """
    w = -gamma * torch.ones_like(x) * dt
    return x * torch.exp(w) + drive * dt * expm1_ratio(w)


def ctrnn_step(x, drive, gamma, dt, method="exact", substeps=1):
    """Advance the CTRNN state over one input point of ``dt`` ns (``method``, ``substeps``).

    >>> ctrnn_step(torch.zeros(2, 4), torch.ones(2, 4), 0.1, 1.0, "euler").sum()
    tensor(8.)
    """
    return advance(
        lambda s: ctrnn_rate(s, drive, gamma),
        lambda s, h: ctrnn_exact(s, drive, gamma, h),
        x,
        dt,
        method,
        substeps,
    )


def ctrnn_update(x, u, p: CTRNNParameters):
    """One call of a CTRNN layer: x advanced under the drive S u over ``p.dt``; returns (y, x).

    >>> y, x = ctrnn_update(torch.zeros(1, 2), torch.ones(1, 2), CTRNNParameters(torch.tensor(2.0), torch.tensor(1.0)))
    >>> x
    tensor([[0.7869, 0.7869]])
    """
    x = ctrnn_step(x, p.gain * u, p.gamma, p.dt, p.method, p.substeps)
    return torch.tanh(x), x
