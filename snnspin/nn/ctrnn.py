"""``CTRNN``: continuous-time RNN neurons, the software twin of ``Oscillator``."""

from __future__ import annotations

import torch

from ..functional.ctrnn import ctrnn_update
from ..functional.params import CTRNNParameters
from ..functional.steppers import warn_if_unstable
from .stateful import RelaxingNeuron


class CTRNN(RelaxingNeuron):
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
        super().__init__(tau, dt, gain, method, substeps, learn_tau, learn_gain, init_hidden, output, check)
        self._constants_checked = True  # from here on an assigned constant is checked

    def rest_state(self, input_):
        return (torch.zeros_like(input_),)

    @property
    def physics(self) -> CTRNNParameters:
        """This layer's constants as one record (read by every engine)."""
        return CTRNNParameters(tau=self.tau, gain=self.gain, dt=self.dt, substeps=self.substeps, method=self.method)

    def step(self, input_, state):
        (x,) = state
        p = self.physics
        if self.check and self.method != "exact":
            warn_if_unstable(self.method, float(p.gamma.detach().max()), self.dt, self.substeps, "CTRNN")
        y, x = ctrnn_update(x, input_, p)
        return y, (x,)

    def init_ctrnn(self):
        """Alias of ``reset_mem`` in snnTorch's ``init_*`` style."""
        return self.reset_mem()
