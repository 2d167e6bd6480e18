"""The snnTorch-style surface shared by every stateful neuron layer of snnspin.

Conventions copied from snnTorch (``snntorch.Leaky``) so that users find them familiar:

- ``forward(input_, state=None)`` returns ``(output, state)``; ``mem=`` is accepted as an
  alias of ``state=``, as snnTorch users type it;
- ``init_hidden=True`` keeps the state inside the layer and returns only the output,
  so the layer can sit in an ``nn.Sequential``; ``output=True`` then returns both;
- ``reset_mem()`` (alias ``reset_hidden()``) puts the state back to the neuron's rest
  state, detached from any graph; after it the layer behaves exactly like a fresh copy;
  ``detach_hidden()`` cuts the graph for truncated BPTT;
- ``learn_*`` flags make a constant an ``nn.Parameter`` instead of a buffer;
- the state lives in lazily sized, non-persistent buffers that follow ``.to(device)``.

Rules: a state passed explicitly is never written into the layer (the call is pure); a
stored state whose shape differs from the input's (a new batch size without a reset)
starts at rest, as in snnTorch; integer inputs are promoted to the default float dtype;
``copy.deepcopy`` works after any forward (the copy's state is detached).

Unlike snnTorch there is no class-level registry of instances: each layer owns its
state and nothing is kept alive after the layer is gone.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .._checks import check_finite, check_positive
from ..functional.steppers import check_method

_UNSET = object()


def as_float_input(input_: torch.Tensor) -> torch.Tensor:
    """``input_`` as a floating tensor: integer and bool inputs become the default dtype.

    >>> as_float_input(torch.ones(2, dtype=torch.long)).dtype
    torch.float32
    """
    input_ = torch.as_tensor(input_)
    return input_ if input_.is_floating_point() else input_.to(torch.get_default_dtype())


def check_per_neuron(name: str, value: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``value`` is a scalar or a 1-D tensor (one value per neuron).

    >>> check_per_neuron("tau", torch.ones(2, 3))
    Traceback (most recent call last):
    ...
    ValueError: tau must be a number or a 1-D tensor (one value per neuron), got shape (2, 3)
    """
    if value.dim() > 1:
        raise ValueError(f"{name} must be a number or a 1-D tensor (one value per neuron), got shape "
                         f"{tuple(value.shape)}")


def keep_added_buffers(module: nn.Module, state_dict: dict, prefix: str) -> None:
    """For ``_load_from_state_dict``: a file written before ``module.added_buffers`` existed lacks
    them; loading it keeps the module's own values for those (and only those) names."""
    for name in module.added_buffers:
        state_dict.setdefault(prefix + name, getattr(module, name))


class StatefulLayer(nn.Module):
    """Base class: subclasses set ``state_names`` and implement ``rest_state`` and ``step``.

    ``rest_state(input_)`` returns a tuple of tensors shaped like the state for this
    input; ``step(input_, state)`` returns ``(output, new_state)``. ``per_neuron_names``
    lists the constants that may hold one value per neuron (checked against the input).
    """

    state_names: tuple[str, ...] = ()
    per_neuron_names: tuple[str, ...] = ()
    #: Plain attributes (not buffers) whose assignment re-runs ``check_constants``.
    checked_attributes: tuple[str, ...] = ()

    def __init__(self, init_hidden: bool = False, output: bool = False, check: bool = True):
        super().__init__()
        self.init_hidden = init_hidden
        self.output = output
        self.check = check
        for name in self.state_names:
            self.register_buffer(name, torch.zeros(0), persistent=False)

    # -- constants -------------------------------------------------------------
    def _constant_tensor(self, name: str, value) -> torch.Tensor:
        """``value`` as a floating, finite tensor holding a number or one value per neuron,
        checked by ``check_constant``."""
        tensor = torch.as_tensor(value).detach().clone()
        if not tensor.is_floating_point():
            tensor = tensor.to(torch.get_default_dtype())
        check_per_neuron(name, tensor)
        check_finite(name, tensor)
        self.check_constant(name, tensor)
        return tensor

    def check_constant(self, name: str, value: torch.Tensor) -> None:
        """Subclasses raise ``ValueError`` for a physically meaningless constant."""

    def _register_constant(self, name: str, value, learn: bool = False) -> None:
        """Store ``value`` as an ``nn.Parameter`` if ``learn`` else as a buffer (``None`` allowed:
        an unset optional constant). Assigning a number later goes through the same checks."""
        if value is None:
            self.register_buffer(name, None)
            return
        tensor = self._constant_tensor(name, value)
        if learn:
            setattr(self, name, nn.Parameter(tensor))
        else:
            self.register_buffer(name, tensor)

    def __setattr__(self, name, value):
        buffers = self.__dict__.get("_buffers", {})
        if name in buffers and name not in self.state_names and value is not None:
            if not isinstance(value, torch.Tensor) or not value.requires_grad:
                # checked, then in the layer's own dtype and device (a float64 layer stays float64)
                like = buffers[name] if buffers[name] is not None else self._float_like()
                if not isinstance(value, torch.Tensor) and not isinstance(value, bool):
                    value = torch.as_tensor(value, dtype=like.dtype)  # a number is read in the layer's precision
                value = self._constant_tensor(name, value).to(like)
        checked = (name in buffers and name not in self.state_names) or name in self.checked_attributes
        previous = buffers[name] if name in buffers else self.__dict__.get(name)
        super().__setattr__(name, value)
        if checked and "_constants_checked" in self.__dict__:
            try:
                self.check_constants()
            except ValueError:
                super().__setattr__(name, previous)  # refused: the layer keeps what it had
                raise

    def _float_like(self) -> torch.Tensor:
        """A floating tensor of this layer (its dtype and device), or a default-dtype scalar."""
        for tensor in list(self._parameters.values()) + list(self._buffers.values()):
            if tensor is not None and tensor.is_floating_point() and tensor.numel() and \
                    not any(tensor is getattr(self, n) for n in self.state_names):
                return tensor
        return torch.zeros(())

    def check_constants(self) -> None:
        """Subclasses raise ``ValueError`` when the constants together are meaningless (checked
        after construction and after every assignment of one)."""

    def _check_widths(self, input_: torch.Tensor) -> None:
        features = input_.shape[-1] if input_.dim() else 1
        for name in self.per_neuron_names:
            value = getattr(self, name)
            if isinstance(value, torch.Tensor) and value.dim() == 1 and value.numel() not in (1, features):
                raise ValueError(f"{type(self).__name__}: {name} has {value.numel()} values (one per neuron) "
                                 f"but the input has {features} features")

    # -- state -----------------------------------------------------------------
    def _get_state(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, name) for name in self.state_names)

    def _set_state(self, state) -> None:
        for name, value in zip(self.state_names, state):
            setattr(self, name, value)

    def rest_state(self, input_: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def rest_depends_on_input(self) -> bool:
        """Whether the rest state is taken from the first input (then a reset empties the state)."""
        return False

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
            if self.check:
                check_finite(f"{type(self).__name__}: state '{name}'", s)
        if self.check:
            self.check_state(state)
        return state

    def check_state(self, state) -> None:
        """Subclasses raise ``ValueError`` for an explicit state the neuron cannot be in (checked
        with ``check``, after the shapes and a finite check)."""

    def _rest(self, input_):
        with torch.no_grad():
            return tuple(s.detach() for s in self.rest_state(input_))

    def _pack(self, state):
        """The state as returned to the caller: one tensor, or the tuple (a NamedTuple in subclasses)."""
        return state[0] if len(state) == 1 else tuple(state)

    def forward(self, input_: torch.Tensor, state=None, mem=_UNSET):
        if mem is not _UNSET:
            if state is not None:
                raise TypeError(f"{type(self).__name__}: pass the state as state= or as mem=, not both")
            state = mem
        if self.init_hidden and state is not None:
            raise TypeError(f"state should not be passed to {type(self).__name__} while init_hidden=True")
        input_ = as_float_input(input_)
        if self.check:
            check_finite("input_", input_)
            self._check_widths(input_)
        explicit = state is not None
        out, new_state = self.step(input_, self._resolve_state(input_, state))
        if not explicit:  # an explicit state is the caller's: the call stays pure
            self._set_state(new_state)
        if self.init_hidden and not self.output:
            return out
        return out, self._pack(new_state)

    def reset_hidden(self):
        """Put the state back to the rest state (same shape, detached) and return it: the
        layer then behaves exactly like a fresh copy."""
        state = self._get_state()
        if state and state[0].numel() > 0 and not self.rest_depends_on_input():
            self._set_state(self._rest(state[0]))
        else:
            self._set_state(tuple(torch.zeros(0, dtype=s.dtype, device=s.device) for s in state))
        return self._pack(self._get_state())

    def reset_mem(self):
        """snnTorch's name for ``reset_hidden``."""
        return self.reset_hidden()

    def detach_hidden(self) -> None:
        """Detach the state from the graph (truncated BPTT); values are kept."""
        self._set_state(tuple(s.detach() for s in self._get_state()))

    def __deepcopy__(self, memo):
        """A copy with the state detached (a state inside a graph cannot be deep-copied)."""
        state = self._get_state()
        self.detach_hidden()
        try:
            return copy._reconstruct(self, memo, *self.__reduce_ex__(4))
        finally:
            self._set_state(state)


def _describe(value: torch.Tensor) -> str:
    if value.numel() == 1:
        return f"{float(value):.4g}"
    return f"[{value.numel()}] mean {float(value.detach().mean()):.4g}"


class RelaxingNeuron(StatefulLayer):
    """Base of the neuron layers with a relaxation time τ (ns), a gain S and a stepper:
    checks and stores them (``learn_tau``/``learn_gain`` make them trainable)."""

    per_neuron_names = ("tau", "gain")
    checked_attributes = ("dt", "method", "substeps")

    def __init__(self, tau, dt, gain, method, substeps, learn_tau, learn_gain, init_hidden, output, check):
        super().__init__(init_hidden=init_hidden, output=output, check=check)
        check_positive("tau", torch.as_tensor(tau, dtype=torch.float64))
        check_positive("dt", dt)
        check_method(method, substeps)
        self._register_constant("tau", tau, learn_tau)
        self._register_constant("gain", gain, learn_gain)
        self.dt, self.method, self.substeps = float(dt), method, substeps

    def check_constant(self, name, value):
        if name == "tau":
            check_positive("tau", value)

    def check_constants(self):
        """The stepper's settings, re-checked whenever one is assigned (τ as every constant)."""
        check_positive("dt", self.dt)
        check_method(self.method, self.substeps)

    @property
    def gamma(self) -> torch.Tensor:
        """Rate γ = 1/τ in 1/ns."""
        return 1.0 / self.tau

    def extra_repr(self) -> str:
        return (f"tau={_describe(self.tau)} ns, dt={self.dt:g} ns, gain={_describe(self.gain)}, "
                f"method={self.method!r}, substeps={self.substeps}, init_hidden={self.init_hidden}")
