"""``Oscillator``: a layer of spintronic oscillator neurons, snnTorch style."""

from __future__ import annotations

import torch

from ..functional.oscillator import oscillator_rate_bound, oscillator_rest, oscillator_step
from ..functional.steppers import warn_if_unstable
from .stateful import RelaxingNeuron


class Oscillator(RelaxingNeuron):
    """Spintronic oscillator neurons (Plouet et al. eq. 2-4), one per input feature.

    The layer's input u is the synaptic sum W y + b of the paper (a ``nn.Linear`` before
    it computes it). The drive and the dynamics are

        I = S u + b_fixed,           dx/dt = -(γ(1 + Q x) - σ I (1 - x)) x,   γ = 1/τ

    integrated over ``dt`` ns per call with ``method`` (``"exact"``, ``"euler"``,
    ``"rk4"``) in ``substeps`` solver steps. The output is the power x ∈ [0, 1].

    Args:
        tau: relaxation time τ in ns, a float or a tensor ``[N]`` (one per neuron).
        dt: time between input points in ns.
        gain: amplification S (dimensionless), paper: 0.5.
        bias_fixed: fixed bias in 1/ns; ``None`` means 2γ (the paper), which follows τ.
        q, sigma: non-linear damping Q and coupling σ of eq. 1 (paper: 0 and 1).
        x0: reset state; ``None`` means the rest point under zero input (0.5 in the paper).
            x = 0 is a fixed point the dynamics never leaves, so a rest point of 0 is an error.
        learn_tau, learn_gain: make τ or S trainable parameters.
        init_hidden, output, check: see ``StatefulLayer``; ``check`` also warns when an
            explicit stepper is unstable for the drives it sees.

    Shapes: input ``[B, N]`` (or any ``[..., N]``) → output and state of the same shape.

    Example:
        >>> import torch
        >>> neuron = Oscillator(tau=14.12, dt=1.0)
        >>> x, state = neuron(torch.zeros(2, 3))      # starts and stays at rest
        >>> x
        tensor([[0.5000, 0.5000, 0.5000],
                [0.5000, 0.5000, 0.5000]])
    """

    state_names = ("x",)

    def __init__(
        self,
        tau=14.12,
        dt: float = 1.0,
        gain=0.5,
        bias_fixed=None,
        q: float = 0.0,
        sigma: float = 1.0,
        method: str = "exact",
        substeps: int = 1,
        x0=None,
        learn_tau: bool = False,
        learn_gain: bool = False,
        init_hidden: bool = False,
        output: bool = False,
        check: bool = True,
    ):
        super().__init__(tau, dt, gain, method, substeps, learn_tau, learn_gain, init_hidden, output, check)
        self.bias_fixed = bias_fixed
        self.q, self.sigma = float(q), float(sigma)
        self.x0 = x0
        rest = self._rest_value()
        if x0 is None and bool((rest <= 0).any()):
            raise ValueError(
                "with this bias_fixed the rest point is x = 0, a fixed point the oscillator "
                "never leaves; raise bias_fixed above γ/σ or pass x0 in (0, 1]"
            )

    def fixed_bias(self) -> torch.Tensor:
        """b_fixed in 1/ns: 2γ by default (the paper), else the value given."""
        return 2.0 * self.gamma if self.bias_fixed is None else torch.as_tensor(self.bias_fixed)

    def _rest_value(self) -> torch.Tensor:
        with torch.no_grad():
            return oscillator_rest(self.fixed_bias(), self.gamma, self.q, self.sigma)

    def rest_state(self, input_):
        value = self._rest_value() if self.x0 is None else torch.as_tensor(self.x0)
        return (value.to(input_).expand_as(input_).clone(),)

    def step(self, input_, state):
        (x,) = state
        drive = self.gain * input_ + self.fixed_bias()
        gamma = self.gamma
        if self.check and self.method != "exact":
            bound = oscillator_rate_bound(drive, gamma, self.q, self.sigma)
            warn_if_unstable(self.method, bound, self.dt, self.substeps, "Oscillator")
        x = oscillator_step(x, drive, gamma, self.dt, self.q, self.sigma, self.method, self.substeps)
        return x, (x,)

    def init_oscillator(self):
        """Alias of ``reset_mem`` in snnTorch's ``init_*`` style."""
        return self.reset_mem()
