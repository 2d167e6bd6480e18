"""Reset or detach the state of every stateful layer of a network, snnTorch's too.

``snntorch.utils.reset`` only recognises snnTorch's own neuron classes; these helpers
walk ``net.modules()`` (nested containers included) and handle both.
"""

from __future__ import annotations

from torch import nn

from .stateful import StatefulLayer


def _snntorch_neuron_class():
    try:
        from snntorch._neurons.neurons import SpikingNeuron
    except ImportError:  # pragma: no cover - snntorch is a dependency
        return None
    return SpikingNeuron


def reset(net: nn.Module) -> nn.Module:
    """Reset every snnspin layer to its rest state and every snnTorch neuron to zero.

    Works on any module tree (``nn.Sequential``, ``nn.ModuleList``, custom modules).
    Returns ``net`` so it can be chained.

    Example:
        >>> import torch, snntorch as snn
        >>> from torch import nn
        >>> from snnspin.nn import Oscillator
        >>> net = nn.Sequential(nn.Linear(1, 4), Oscillator(init_hidden=True),
        ...                     nn.Linear(4, 2), snn.Leaky(beta=0.9, init_hidden=True))
        >>> _ = net(torch.ones(3, 1))
        >>> _ = reset(net)
        >>> net[1].x.unique().tolist(), net[3].mem.abs().sum().item()
        ([0.5], 0.0)
    """
    neuron_cls = _snntorch_neuron_class()
    for module in net.modules():
        if isinstance(module, StatefulLayer):
            module.reset_hidden()
        elif neuron_cls is not None and isinstance(module, neuron_cls) and hasattr(module, "reset_mem"):
            module.reset_mem()
    return net


def detach_hidden(net: nn.Module) -> nn.Module:
    """Detach the state of every snnspin layer and snnTorch neuron (truncated BPTT).

    >>> from torch import nn
    >>> detach_hidden(nn.Sequential())
    Sequential()
    """
    neuron_cls = _snntorch_neuron_class()
    for module in net.modules():
        if isinstance(module, StatefulLayer):
            module.detach_hidden()
        elif neuron_cls is not None and isinstance(module, neuron_cls):
            for name, buf in list(module._buffers.items()):
                if buf is not None and buf.requires_grad:
                    module._buffers[name] = buf.detach()
    return net
