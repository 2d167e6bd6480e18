"""``ALIF``: leaky integrate-and-fire neurons with an adaptive threshold (snnTorch has none)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .._checks import check_flag, check_positive
from .stateful import StatefulLayer

#: Surrogate gradients by name: snnTorch's, each with its own default slope.
SURROGATES = {"atan": 2.0, "fast_sigmoid": 25.0, "sigmoid": 25.0}


def spike_function(name: str = "atan", slope: float = 0.0):
    """snnTorch's surrogate spike function ``name`` (Heaviside forward, smooth backward) with
    ``slope`` (0: snnTorch's default for it: atan α = 2, fast_sigmoid and sigmoid 25).

    >>> spike = spike_function("fast_sigmoid")
    >>> spike(torch.tensor([-0.5, 0.5]))
    tensor([0., 1.])
    """
    from snntorch import surrogate

    if name not in SURROGATES:
        raise ValueError(f"surrogate must be one of {', '.join(SURROGATES)}, got {name!r}")
    if slope < 0:
        raise ValueError(f"surrogate slope must be > 0 (or 0: the default), got {slope}")
    value = float(slope) or SURROGATES[name]
    return surrogate.atan(alpha=value) if name == "atan" else getattr(surrogate, name)(slope=value)


def alif_update(mem, adapt, fired, drive, beta, rho: float, strength: float, threshold: float):
    """One ALIF step before the spike (the equations of ``ALIF``): returns (mem_t, a_t, A_t), where
    the spike is z_t = H(mem_t - A_t). ``fired`` is z_{t-1} (detached unless the layer's
    ``detach_reset`` is False), ``drive`` u_t; tensors ``[..., N]``, β a float or ``[N]``.
    Shared by ``ALIF.step`` and ``snnspin.spiking_loop``.

    >>> mem, a, level = alif_update(torch.tensor(1.5), torch.tensor(0.5), torch.tensor(1.0), torch.tensor(0.6),
    ...                             0.9, 0.8, 1.8, 1.0)
    >>> round(float(mem), 4), round(float(a), 4), round(float(level), 4)  # 1.35 + 0.6 - 1.9; 0.4 + 0.2
    (0.05, 0.6, 2.08)
    """
    mem = beta * mem + drive - fired * (threshold + strength * adapt)
    adapt = rho * adapt + (1.0 - rho) * fired
    return mem, adapt, threshold + strength * adapt


class ALIFState(NamedTuple):
    """The state of an ``ALIF`` layer: membrane, adaptation and the last spikes, each ``[..., N]``."""

    mem: torch.Tensor
    adapt: torch.Tensor
    spk: torch.Tensor


class ALIF(StatefulLayer):
    """Adaptive-threshold LIF neurons (LSNN; Bellec et al., NeurIPS 2018), one per input feature.

    Per step (dimensionless membrane, time in steps):

        A_{t-1} = θ + b_a a_{t-1}                          (threshold)
        mem_t = β mem_{t-1} + u_t - z_{t-1} A_{t-1}        (reset by subtraction of the threshold fired)
        a_t   = ρ a_{t-1} + (1 - ρ) z_{t-1}                (adaptation: the neuron's recent firing rate)
        z_t   = H(mem_t - θ - b_a a_t)                     (surrogate gradient in the backward pass)

    with β = e^{-dt/τ} (``beta``; trainable per neuron with ``learn_beta``), ρ = e^{-dt/τ_a}
    (``rho``) and ``adapt`` b_a ≥ 0 (b_a = 0 is a plain LIF neuron with snnTorch's
    subtract reset). The trace a is normalised as in the LSNN (and in Yin et al., Nature Machine
    Intelligence 2021): it is a running average of the spikes, in [0, 1], so b_a is the rise of
    the threshold of a neuron that fires at every step, whatever τ_a; both papers use
    b_a = 1.8. The spike's gradient is snnTorch's surrogate ``surrogate`` with ``slope``.
    The reset term and the trace see the spike detached (sg(z_{t-1})), as snnTorch's ``Leaky``
    does, unless ``detach_reset=False``: then the spike's surrogate gradient flows through both,
    as in the LSNN's code (its ``stop_z_gradients`` off) and ``snnspin.nn.Leaky(detach_reset=False)``.

    Same surface as every snnspin layer (and snnTorch's): ``forward(input_, state=None)`` →
    ``(spikes, ALIFState)``; ``init_hidden``, ``reset_mem``, ``detach_hidden``.

    Example:
        >>> import torch
        >>> def spikes(adapt):
        ...     layer, state, out = ALIF(beta=0.9, rho=0.8, adapt=adapt), None, []
        ...     for t in range(8):
        ...         z, state = layer(torch.full((1, 1), 1.0), state)
        ...         out.append(int(z))
        ...     return out
        >>> spikes(0.0), spikes(1.8)   # the threshold rises with the firing rate, so spikes thin out
        ([0, 1, 1, 1, 1, 1, 1, 1], [0, 1, 1, 0, 1, 0, 1, 0])
    """

    state_names = ("mem", "adapt_trace", "spk")
    per_neuron_names = ("beta",)

    def __init__(self, beta=0.9, rho: float = 0.95, adapt: float = 1.8, threshold: float = 1.0,
                 learn_beta: bool = False, surrogate: str = "atan", slope: float = 0.0, init_hidden: bool = False,
                 output: bool = False, check: bool = True, detach_reset: bool = True):
        super().__init__(init_hidden=init_hidden, output=output, check=check)
        check_flag("detach_reset", detach_reset)
        self.detach_reset = detach_reset
        self._register_constant("beta", beta, learn_beta)
        self.rho, self.adapt, self.threshold = rho, adapt, threshold
        self.check_constants()
        self.rho, self.adapt, self.threshold = float(rho), float(adapt), float(threshold)
        if isinstance(slope, bool) or not isinstance(slope, (int, float)) or not 0 <= slope < math.inf:
            raise ValueError(f"slope must be a finite number >= 0 (0: the surrogate's default), got {slope!r}")
        self.surrogate, self.slope = surrogate, float(slope)
        self.spike = spike_function(surrogate, slope)
        self._constants_checked = True  # from here on an assigned constant is checked

    checked_attributes = ("rho", "adapt", "threshold")

    def check_constants(self):
        """ρ in [0, 1], b_a >= 0 and the threshold > 0, each a finite number (NaN refused)."""
        for name, low, high in (("rho", 0.0, 1.0), ("adapt", 0.0, math.inf), ("threshold", 0.0, math.inf)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high or \
                    not math.isfinite(value) or (name == "threshold" and value == 0):
                bound = f"[{low:g}, {high:g}]" if name == "rho" else ("> 0" if name == "threshold" else ">= 0")
                raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")

    def check_constant(self, name, value):
        if name == "beta" and not bool(((value >= 0) & (value <= 1)).all()):
            raise ValueError(f"beta must be in [0, 1], got {value.flatten()[:4].tolist()}")

    def rest_state(self, input_):
        zeros = torch.zeros_like(input_)
        return zeros, zeros.clone(), zeros.clone()

    def _pack(self, state):
        return ALIFState(*state)

    def step(self, input_, state):
        mem, adapt, spk = state
        fired = spk.detach() if self.detach_reset else spk
        mem, adapt, level = alif_update(mem, adapt, fired, input_, self.beta.clamp(0.0, 1.0), self.rho,
                                        self.adapt, self.threshold)
        spk = self.spike(mem - level).to(mem.dtype)
        return spk, (mem, adapt, spk)

    def extra_repr(self) -> str:
        beta = f"{float(self.beta):.4g}" if self.beta.numel() == 1 else f"[{self.beta.numel()}]"
        return (f"beta={beta}, rho={self.rho:.4g}, adapt={self.adapt:g}, threshold={self.threshold:g}, "
                f"surrogate={self.surrogate!r}, init_hidden={self.init_hidden}"
                + ("" if self.detach_reset else ", detach_reset=False"))


def beta_from_tau(tau_ns: float, dt_ns: float) -> float:
    """β = e^{-dt/τ} for a time constant τ and a step dt in ns.

    >>> round(beta_from_tau(10.0, 1.0), 4)
    0.9048
    """
    check_positive("tau", tau_ns)
    check_positive("dt", dt_ns)
    return math.exp(-dt_ns / tau_ns)
