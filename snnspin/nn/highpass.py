"""``HighPass``: the filter between oscillator layers, as a stateful layer."""

from __future__ import annotations

from typing import NamedTuple

import torch

from .._checks import check_positive
from ..functional.highpass import highpass_update
from ..functional.params import HighPassParameters
from .stateful import StatefulLayer, _describe


class HighPassState(NamedTuple):
    """State of a ``HighPass`` layer: the filtered output y and the previous sample x_prev."""

    y: torch.Tensor
    x_prev: torch.Tensor


class HighPass(StatefulLayer):
    """High-pass filter y of a signal x (Plouet et al. eq. 5), one per feature.

        dy/dt = -2π f_cut y + dx/dt

    Each call receives the next sample of x (taken ``dt`` ns after the previous one) and
    returns y, exact for x linear between samples. f_cut in MHz (paper: 1 MHz, i.e. a
    time constant of 159 ns, much longer than a 64 ns sequence: y ≈ x - x(0)).

    State: ``HighPassState(y, x_prev)``. At rest y = 0 and x_prev = ``x0``; with
    ``x0=None`` the first sample after creation or a reset is taken as the starting level,
    so the first output is 0. Constants: ``layer.physics`` (a ``HighPassParameters``).
    Shapes: input ``[..., N]`` → output of the same shape.

    Example:
        >>> import torch
        >>> hp = HighPass(f_cut_mhz=1.0, dt=1.0, x0=0.5)
        >>> y, (y_state, x_prev) = hp(torch.tensor([0.7]))
        >>> y   # 0.2 (1 - e^{-ω dt}) / (ω dt)
        tensor([0.1994])
    """

    state_names = ("y", "x_prev")
    per_neuron_names = ("f_cut_mhz", "x0")
    checked_attributes = ("dt",)

    def __init__(
        self,
        f_cut_mhz=1.0,
        dt: float = 1.0,
        x0=None,
        learn_f_cut: bool = False,
        init_hidden: bool = False,
        output: bool = False,
        check: bool = True,
    ):
        super().__init__(init_hidden=init_hidden, output=output, check=check)
        check_positive("f_cut_mhz", torch.as_tensor(f_cut_mhz, dtype=torch.float64))
        check_positive("dt", dt)
        self._register_constant("f_cut_mhz", f_cut_mhz, learn_f_cut)
        self._register_constant("x0", x0)
        self.dt = float(dt)
        self._constants_checked = True  # from here on an assigned constant is checked

    def check_constant(self, name, value):
        if name == "f_cut_mhz":
            check_positive("f_cut_mhz", value)

    def check_constants(self):
        check_positive("dt", self.dt)

    @property
    def physics(self) -> HighPassParameters:
        """This filter's constants as one record."""
        return HighPassParameters(f_cut_mhz=self.f_cut_mhz, dt=self.dt, x0=self.x0)

    def rest_depends_on_input(self) -> bool:
        return self.x0 is None

    def rest_state(self, input_):
        x_prev = input_ if self.x0 is None else self.x0.to(input_)
        return torch.zeros_like(input_), x_prev.expand_as(input_).clone()

    def _pack(self, state):
        return HighPassState(*state)

    def step(self, input_, state):
        y, x_prev = state
        y = highpass_update(y, x_prev, input_, self.physics)
        return y, (y, input_)

    def init_highpass(self):
        """Alias of ``reset_mem`` in snnTorch's ``init_*`` style."""
        return self.reset_mem()

    def extra_repr(self) -> str:
        return f"f_cut={_describe(self.f_cut_mhz)} MHz, dt={self.dt:g} ns, init_hidden={self.init_hidden}"
