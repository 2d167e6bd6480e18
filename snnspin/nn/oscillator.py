"""``Oscillator``: a layer of spintronic oscillator neurons, snnTorch style."""

from __future__ import annotations

import torch

from ..functional.oscillator import oscillator_rate_bound, oscillator_update
from ..functional.params import OscillatorParameters
from ..functional.steppers import warn_if_unstable
from .stateful import RelaxingNeuron, keep_added_buffers


class Oscillator(RelaxingNeuron):
    """Spintronic oscillator neurons (Plouet et al. eq. 2-4), one per input feature.

    The layer's input u is the synaptic sum W y + b of the paper (a ``nn.Linear`` before
    it computes it). The drive and the dynamics are

        I = S u + b_fixed,           dx/dt = -(γ(1 + Q x) - σ I (1 - x)) x,   γ = 1/τ

    integrated over ``dt`` ns per call with ``method`` (``"exact"``, ``"euler"``,
    ``"rk4"``) in ``substeps`` solver steps. The output is the power x ∈ [0, 1]. The
    constants form one record, ``layer.physics`` (an ``OscillatorParameters``), which
    every engine reads: the per-step path here and the fused path of the networks.

    Args:
        tau: relaxation time τ in ns, a float or a tensor ``[N]`` (one per neuron).
        dt: time between input points in ns.
        gain: amplification S (dimensionless), paper: 0.5; a float or ``[N]``.
        bias_fixed: fixed bias in 1/ns; ``None`` means 2γ (the paper), which follows τ.
        q, sigma: non-linear damping Q ≥ 0 and coupling σ > 0 of eq. 1 (paper: 0 and 1).
        x0: reset state in (0, 1]; ``None`` means the rest point under zero input (0.5 in
            the paper). x = 0 is a fixed point the dynamics never leaves, so a rest point of 0
            is an error.
        x_min: a floor on x after every call, in [0, 1) (0: none, the paper): the power a thermal
            floor keeps a real oscillator at, from which a neuron driven dead can recover.
        thermal_power: thermal noise x_th = k_B T / E_0 in [0, 1) (0: none, the paper): the mean
            power a passive oscillator keeps; the stochastic model and its scheme are in
            ``snnspin.functional.oscillator.thermal_kick``. Samples come from the layer's
            ``generator`` (a ``torch.Generator``; None: torch's global RNG).
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
        >>> neuron
        Oscillator(tau=14.12 ns, dt=1 ns, gain=0.5, method='exact', substeps=1, init_hidden=False)
    """

    state_names = ("x",)
    per_neuron_names = ("tau", "gain", "bias_fixed", "q", "sigma", "x0")
    checked_attributes = RelaxingNeuron.checked_attributes + ("x_min", "thermal_power")
    #: Buffers that files written before they existed lack: loading such a file keeps the constructor's values.
    added_buffers = ("q", "sigma")

    def __init__(
        self,
        tau=14.12,
        dt: float = 1.0,
        gain=0.5,
        bias_fixed=None,
        q=0.0,
        sigma=1.0,
        method: str = "exact",
        substeps: int = 1,
        x0=None,
        x_min: float = 0.0,
        thermal_power: float = 0.0,
        learn_tau: bool = False,
        learn_gain: bool = False,
        init_hidden: bool = False,
        output: bool = False,
        check: bool = True,
    ):
        super().__init__(tau, dt, gain, method, substeps, learn_tau, learn_gain, init_hidden, output, check)
        self._register_constant("q", q)
        self._register_constant("sigma", sigma)
        self._register_constant("bias_fixed", bias_fixed)
        self._register_constant("x0", x0)
        self.x_min = x_min
        self.thermal_power = thermal_power
        self.generator: torch.Generator | None = None
        self.check_constants()
        self._constants_checked = True

    def check_constants(self):
        super().check_constants()
        if not (isinstance(self.x_min, (int, float)) and not isinstance(self.x_min, bool) and 0 <= self.x_min < 1):
            raise ValueError(f"x_min must be a number in [0, 1), got {self.x_min!r}")
        power = self.thermal_power
        if not (isinstance(power, (int, float)) and not isinstance(power, bool) and 0 <= power < 1):
            raise ValueError(f"thermal_power must be a number in [0, 1), got {power!r}")
        if self.x0 is None and bool((self.physics.rest() <= 0).any()):
            raise ValueError(
                "with this bias_fixed the rest point is x = 0, a fixed point the oscillator "
                "never leaves; raise bias_fixed above γ/σ or pass x0 in (0, 1]"
            )

    def check_state(self, state):
        (x,) = state
        if not bool(((x >= 0) & (x <= 1)).all()):
            hint = (f"; method={self.method!r} with dt = {self.dt:g} ns can step out of it: use method='exact' or more "
                    "substeps") if self.method != "exact" else ""
            raise ValueError(f"Oscillator: state 'x' is a power in [0, 1], got values from {float(x.min()):.4g} to "
                             f"{float(x.max()):.4g}{hint}")

    def check_constant(self, name, value):
        super().check_constant(name, value)
        if name == "x0" and not bool(((value > 0) & (value <= 1)).all()):
            raise ValueError(f"x0 must be in (0, 1] (a power; x = 0 never moves), got {value.flatten()[:4].tolist()}")
        if name == "q" and not bool((value >= 0).all()):
            raise ValueError(f"q (non-linear damping) must be >= 0, got {value.flatten()[:4].tolist()}")
        if name == "sigma" and not bool((value > 0).all()):
            raise ValueError(f"sigma (coupling) must be > 0, got {value.flatten()[:4].tolist()}")

    @property
    def physics(self) -> OscillatorParameters:
        """This layer's constants as one record (read by every engine)."""
        return OscillatorParameters(
            tau=self.tau, gain=self.gain, bias_fixed=self.bias_fixed, q=self.q, sigma=self.sigma,
            x0=self.x0, dt=self.dt, substeps=self.substeps, method=self.method, x_min=float(self.x_min),
            thermal_power=float(self.thermal_power),
        )

    def fixed_bias(self) -> torch.Tensor:
        """b_fixed in 1/ns: 2γ by default (the paper), else the value given."""
        return self.physics.fixed_bias()

    def rest_state(self, input_):
        return (self.physics.rest().to(input_).expand_as(input_).clone(),)

    def step(self, input_, state):
        (x,) = state
        p = self.physics
        if self.check and self.method != "exact":
            bound = oscillator_rate_bound(p.gain * input_ + p.fixed_bias(), p.gamma, p.q, p.sigma)
            warn_if_unstable(self.method, bound, self.dt, self.substeps, "Oscillator")
        x = oscillator_update(x, input_, p, self.generator)
        return x, (x,)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        keep_added_buffers(self, state_dict, prefix)  # weights saved before Q and σ were buffers
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def init_oscillator(self):
        """Alias of ``reset_mem`` in snnTorch's ``init_*`` style."""
        return self.reset_mem()
