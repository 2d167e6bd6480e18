"""Per-layer parameter records: the one source of the neuron physics that every engine reads.

In the spirit of Norse's ``LIFParameters``, each neuron layer owns one typed record of its
constants. The per-step reference path (``snnspin.nn`` on ``snnspin.functional``), the fused
path (``snnspin.fused``) and its C kernels (``snnspin.native``) all take them from here, and
the derived quantities live here once:

    γ = 1/τ (1/ns),   b_fixed = 2γ unless given (1/ns),   ω_c = 2π f_cut · 1e-3 (1/ns)
    rest point x* = a/b of dx/dt = a x - b x² under the drive b_fixed (0 where a ≤ 0)

Tensors may be scalars (one value for the layer) or ``[N]`` (one per neuron). ``dt`` is the
time one call advances (ns), ``substeps`` the solver steps it is split into.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch


def cutoff_rate(f_cut_mhz):
    """ω_c = 2π f_cut in 1/ns for a cut-off frequency in MHz (float or tensor).

    >>> round(cutoff_rate(1.0), 8)
    0.00628319
    """
    return 2.0 * math.pi * f_cut_mhz * 1e-3


def _is_one(value) -> bool:
    return not isinstance(value, torch.Tensor) and value == 1.0


def _is_zero(value) -> bool:
    return not isinstance(value, torch.Tensor) and value == 0.0


def logistic_coefficients(drive, gamma, q=0.0, sigma=1.0):
    """Return (a, b) of dx/dt = a x - b x²: a = σI - γ, b = γQ + σI (1/ns).

    >>> logistic_coefficients(torch.tensor(1.0), 0.5)
    (tensor(0.5000), tensor(1.))
    """
    drive = torch.as_tensor(drive)
    sigma_i = drive if _is_one(sigma) else sigma * drive
    return sigma_i - gamma, sigma_i if _is_zero(q) else gamma * q + sigma_i


def oscillator_rest(bias, gamma, q=0.0, sigma=1.0):
    """Stable fixed point x* = a/b of the oscillator under a constant drive ``bias``.

    With the paper's fixed bias b_fixed = 2γ (Q = 0, σ = 1): x* = (2γ - γ)/(2γ) = 0.5.
    Returns 0 where a ≤ 0 (drive below threshold: the oscillation dies).

    >>> float(oscillator_rest(2 * 0.07, 0.07))
    0.5
    """
    a, b = logistic_coefficients(torch.as_tensor(bias), gamma, q, sigma)
    return torch.where(a > 0, a / torch.where(a > 0, b, torch.ones_like(b)), torch.zeros_like(a))


class OscillatorParameters(NamedTuple):
    """Constants of one layer of spintronic oscillators (Plouet et al. eq. 1-4).

    I = S u + b_fixed,   dx/dt = -(γ(1 + Q x) - σ I (1 - x)) x,   γ = 1/τ.

    >>> p = OscillatorParameters(tau=torch.tensor(14.12), gain=torch.tensor(0.5))
    >>> round(float(p.fixed_bias()), 6), float(p.rest())
    (0.141643, 0.5)
    """

    tau: torch.Tensor  # ns, scalar or [N]
    gain: torch.Tensor  # S, dimensionless, scalar or [N]
    bias_fixed: Optional[torch.Tensor] = None  # 1/ns; None: 2γ (the paper), following τ
    q: torch.Tensor | float = 0.0  # non-linear damping Q
    sigma: torch.Tensor | float = 1.0  # coupling σ
    x0: Optional[torch.Tensor] = None  # reset state; None: the rest point
    dt: float = 1.0  # ns advanced per call
    substeps: int = 1
    method: str = "exact"
    x_min: float = 0.0  # floor on x after every call (a thermal floor), in [0, 1); 0: none
    thermal_power: float = 0.0  # x_th = k_B T / E_0: thermal noise strength (see thermal_kick); 0: none

    @property
    def gamma(self) -> torch.Tensor:
        """γ = 1/τ in 1/ns."""
        return 1.0 / self.tau

    def fixed_bias(self) -> torch.Tensor:
        """b_fixed in 1/ns: 2γ unless given."""
        return 2.0 * self.gamma if self.bias_fixed is None else self.bias_fixed

    def bias_follows_tau(self) -> bool:
        """Whether b_fixed = 2γ moves with τ (∂b_fixed/∂γ = 2) or is held (0)."""
        return self.bias_fixed is None

    def rest(self) -> torch.Tensor:
        """The reset state: ``x0`` if given, else the rest point under zero input."""
        if self.x0 is not None:
            return torch.as_tensor(self.x0)
        with torch.no_grad():
            return oscillator_rest(self.fixed_bias(), self.gamma, self.q, self.sigma)


class HighPassParameters(NamedTuple):
    """Constants of one high-pass filter layer (eq. 5): dy/dt = -ω_c y + dx/dt.

    >>> round(HighPassParameters(torch.tensor(1.0)).omega_c().item(), 8)
    0.00628319
    """

    f_cut_mhz: torch.Tensor  # MHz, scalar or [N]
    dt: float = 1.0
    x0: Optional[torch.Tensor] = None  # the previous sample at rest; None: the first sample

    def omega_c(self):
        """ω_c = 2π f_cut in 1/ns."""
        return cutoff_rate(self.f_cut_mhz)


class CTRNNParameters(NamedTuple):
    """Constants of one CTRNN layer (eq. 6-8): dx/dt = -γ x + S u, y = tanh(x).

    >>> float(CTRNNParameters(torch.tensor(2.0), torch.tensor(1.0)).gamma)
    0.5
    """

    tau: torch.Tensor
    gain: torch.Tensor
    dt: float = 1.0
    substeps: int = 1
    method: str = "exact"

    @property
    def gamma(self) -> torch.Tensor:
        """γ = 1/τ in 1/ns."""
        return 1.0 / self.tau
