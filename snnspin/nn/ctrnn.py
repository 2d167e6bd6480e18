"""``CTRNN``: continuous-time RNN neurons, the software twin of ``Oscillator``."""

from __future__ import annotations

import torch

from .._checks import check_positive
from ..functional.ctrnn import ctrnn_step
from ..functional.steppers import check_method, warn_if_unstable
from .stateful import StatefulLayer


class CTRNN(StatefulLayer):
    """CTRNN neurons (Plouet et al. eq. 6-8), one per input feature.

        I = S u,     dx/dt = -x/τ + I,     y = tanh(x)

    u is the synaptic sum W y + b computed before the layer; τ in ns (float or ``[N]``),
    dt in ns, S dimensionless. The state x rests at 0 (a stable point for this linear
    equation). Output y = tanh(x), state x; shapes ``[..., N]``.

    Example:
        >>> import torch
        >>> neuron = CTRNN(tau=2.0, dt=1.0, gain=1.0)
        >>> y, x = neuron(torch.ones(1, 2))
        >>> x   # 2 (1 - e^{-1/2})
        tensor([[0.7869, 0.7869]])
    """

    state_names = ("x",)

    def __init__(
        self,
        tau=14.12,
        dt: float = 1.0,
        gain=0.5,
        method: str = "exact",
        substeps: int = 1,
        learn_tau: bool = False,
        learn_gain: bool = False,
        init_hidden: bool = False,
        output: bool = False,
        check: bool = True,
    ):
        super().__init__(init_hidden=init_hidden, output=output, check=check)
        check_positive("tau", torch.as_tensor(tau, dtype=torch.float64))
        check_positive("dt", dt)
        check_method(method, substeps)
        self._register_constant("tau", tau, learn_tau)
        self._register_constant("gain", gain, learn_gain)
        self.dt, self.method, self.substeps = float(dt), method, substeps

    @property
    def gamma(self) -> torch.Tensor:
        """Decay rate γ = 1/τ in 1/ns."""
        return 1.0 / self.tau

    def rest_state(self, input_):
        return (torch.zeros_like(input_),)

    def step(self, input_, state):
        (x,) = state
        gamma = self.gamma
        if self.check and self.method != "exact":
            bound = float(gamma.detach().max())
            warn_if_unstable(self.method, bound, self.dt, self.substeps, "CTRNN")
        x = ctrnn_step(x, self.gain * input_, gamma, self.dt, self.method, self.substeps)
        return torch.tanh(x), (x,)

    def init_ctrnn(self):
        """Alias of ``reset_mem`` in snnTorch's ``init_*`` style."""
        return self.reset_mem()

    def extra_repr(self) -> str:
        return f"dt={self.dt}, method={self.method!r}, substeps={self.substeps}, init_hidden={self.init_hidden}"
