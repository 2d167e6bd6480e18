"""The snnTorch-style surface shared by every stateful neuron layer of snnspin.

Conventions copied from snnTorch (``snntorch.Leaky``) so that users find them familiar:

- ``forward(input_, state=None)`` returns ``(output, state)``;
- ``init_hidden=True`` keeps the state inside the layer and returns only the output,
  so the layer can sit in an ``nn.Sequential``; ``output=True`` then returns both;
- ``reset_mem()`` (alias ``reset_hidden()``) puts the state back to the neuron's rest
  state, detached from any graph; ``detach_hidden()`` cuts the graph for truncated BPTT;
- ``learn_*`` flags make a constant an ``nn.Parameter`` instead of a buffer;
- the state lives in lazily sized, non-persistent buffers that follow ``.to(device)``.

Unlike snnTorch there is no class-level registry of instances: each layer owns its
state and nothing is kept alive after the layer is gone.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_finite


class StatefulLayer(nn.Module):
    """Base class: subclasses set ``state_names`` and implement ``rest_state`` and ``step``.

    ``rest_state(input_)`` returns a tuple of tensors shaped like the state for this
    input; ``step(input_, state)`` returns ``(output, new_state)``.
    """

    state_names: tuple[str, ...] = ()

    def __init__(self, init_hidden: bool = False, output: bool = False, check: bool = True):
        super().__init__()
        self.init_hidden = init_hidden
        self.output = output
        self.check = check
        for name in self.state_names:
            self.register_buffer(name, torch.zeros(0), persistent=False)

    # -- constants -------------------------------------------------------------
    def _register_constant(self, name: str, value, learn: bool) -> None:
        """Store ``value`` as an ``nn.Parameter`` if ``learn`` else as a buffer."""
        tensor = torch.as_tensor(value).detach().clone()
        if not tensor.is_floating_point():
            tensor = tensor.to(torch.get_default_dtype())
        if learn:
            setattr(self, name, nn.Parameter(tensor))
        else:
            self.register_buffer(name, tensor)

    # -- state -----------------------------------------------------------------
    def _get_state(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, name) for name in self.state_names)

    def _set_state(self, state) -> None:
        for name, value in zip(self.state_names, state):
            setattr(self, name, value)

    def rest_state(self, input_: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def step(self, input_: torch.Tensor, state):
        raise NotImplementedError

    def _resolve_state(self, input_, state):
        if state is None:
            state = self._get_state()
            if any(s.shape != input_.shape for s in state):  # new batch size: start at rest
                state = self._rest(input_)
            return state
        state = (state,) if isinstance(state, torch.Tensor) else tuple(state)
        if len(state) != len(self.state_names):
            raise ValueError(
                f"{type(self).__name__} expects a state of {len(self.state_names)} tensor(s) "
                f"({', '.join(self.state_names)}), got {len(state)}"
            )
        if all(s.numel() == 0 for s in state):
            return self._rest(input_)
        for name, s in zip(self.state_names, state):
            if s.shape != input_.shape:
                raise ValueError(
                    f"{type(self).__name__}: state '{name}' has shape {tuple(s.shape)}, "
                    f"expected {tuple(input_.shape)} (the input's shape)"
                )
        return state

    def _rest(self, input_):
        with torch.no_grad():
            return tuple(s.detach() for s in self.rest_state(input_))

    def forward(self, input_: torch.Tensor, state=None):
        if self.init_hidden and state is not None:
            raise TypeError(f"state should not be passed to {type(self).__name__} while init_hidden=True")
        if self.check:
            check_finite("input_", input_)
        out, new_state = self.step(input_, self._resolve_state(input_, state))
        self._set_state(new_state)
        if self.init_hidden and not self.output:
            return out
        return out, (new_state[0] if len(new_state) == 1 else new_state)

    def reset_hidden(self):
        """Put the state back to the rest state (same shape, detached) and return it."""
        state = self._get_state()
        if state and state[0].numel() > 0:
            self._set_state(self._rest(state[0]))
        else:
            self._set_state(tuple(torch.zeros(0, device=s.device) for s in state))
        state = self._get_state()
        return state[0] if len(state) == 1 else state

    def reset_mem(self):
        """snnTorch's name for ``reset_hidden``."""
        return self.reset_hidden()

    def detach_hidden(self) -> None:
        """Detach the state from the graph (truncated BPTT); values are kept."""
        self._set_state(tuple(s.detach() for s in self._get_state()))


class RelaxingNeuron(StatefulLayer):
    """Base of the neuron layers with a relaxation time τ (ns), a gain S and a stepper:
    checks and stores them (``learn_tau``/``learn_gain`` make them trainable)."""

    def __init__(self, tau, dt, gain, method, substeps, learn_tau, learn_gain, init_hidden, output, check):
        from .._checks import check_positive
        from ..functional.steppers import check_method

        super().__init__(init_hidden=init_hidden, output=output, check=check)
        check_positive("tau", torch.as_tensor(tau, dtype=torch.float64))
        check_positive("dt", dt)
        check_method(method, substeps)
        self._register_constant("tau", tau, learn_tau)
        self._register_constant("gain", gain, learn_gain)
        self.dt, self.method, self.substeps = float(dt), method, substeps

    @property
    def gamma(self) -> torch.Tensor:
        """Rate γ = 1/τ in 1/ns."""
        return 1.0 / self.tau

    def extra_repr(self) -> str:
        return f"dt={self.dt}, method={self.method!r}, substeps={self.substeps}, init_hidden={self.init_hidden}"
