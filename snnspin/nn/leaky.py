"""snnTorch's ``Leaky`` with one more option: whether the reset's gradient is stopped."""

from __future__ import annotations

import snntorch as snn

from .._checks import check_flag


class Leaky(snn.Leaky):
    """snnTorch's ``Leaky`` neuron, with ``detach_reset`` (SpikingJelly's name for it).

    Per step (dimensionless membrane, time in steps, reset by subtraction):

        mem_t = β mem_{t-1} + u_t - R(z_{t-1}) θ,    z_t = H(mem_t - θ)

    snnTorch always stops the gradient at the reset, R(z) = sg(z) (``detach_reset=True``, the
    default here too, identical to ``snn.Leaky``). With ``detach_reset=False`` the spike's
    surrogate gradient also flows through the reset, R(z) = z: a spike lowers the next membrane
    by θ, and BPTT now sees that. Zenke & Vogels (Neural Computation 2021) found detaching
    better in their feed-forward tasks; SpikingJelly does not detach by default, nor does the
    LSNN's code (Bellec et al. 2018). On the sequential digits with this package's LIF twin it
    matters (``snnspin.presets``). Every other argument is ``snn.Leaky``'s.

    Example (one neuron driven above threshold; the gradient of the membrane after three steps
    with respect to the drive, through the reset or not):

        >>> import torch
        >>> from snntorch import surrogate
        >>> def grad(detach):
        ...     u = torch.tensor([0.8], requires_grad=True)
        ...     lif = Leaky(beta=0.5, spike_grad=surrogate.fast_sigmoid(slope=1.0), detach_reset=detach)
        ...     mem = torch.zeros(1)
        ...     for _ in range(3):
        ...         _, mem = lif(2.0 * u, mem)
        ...     mem.sum().backward()
        ...     return round(float(u.grad), 4)
        >>> grad(True), grad(False)   # it fires at every step: mem_3 = 2u (1 + β + β²) - θ (β + 1)
        (3.5, 1.9774)

    Through the reset, each spike's surrogate slope s'(mem - θ) takes back part of the gradient:
    with s'(x) = 1/(1 + |x|)², dmem_1 = 2, dmem_2 = 2 + β·2 - s'(0.6)·2 = 2.2188 and
    dmem_3 = 2 + β·2.2188 - s'(0.4)·2.2188 = 1.9774.
    """

    def __init__(self, *args, detach_reset: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        check_flag("detach_reset", detach_reset)
        self.detach_reset = detach_reset

    def mem_reset(self, mem):
        """The reset signal R(z) of the spike ``mem`` last fired (the surrogate's Heaviside of mem - θ),
        detached unless ``detach_reset`` is False."""
        reset = self.spike_grad(mem - self.threshold)
        return reset.detach() if self.detach_reset else reset
