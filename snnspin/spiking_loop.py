"""The spiking twins' fast path: the per-step equations of ``LIFNetwork`` in one lean loop.

The per-step path calls snnTorch's ``Leaky`` (or ``snnspin.nn.ALIF``) module once per layer
and step, and their bookkeeping (state checks, attribute writes, the integrator's unused
spikes) makes a training step at the paper's size 1.4× (ALIF) to 1.8× (LIF) slower. This loop computes the
same thing with plain tensor operations, the same surrogate spike function and the same
parameters, so the results and gradients equal the per-step path's to rounding (tested in
float64, ``tests/test_spiking.py``). Per solver step and layer n (time in steps):

    u      = S (W_ext^n z^{n-1}_t + b^n + W_int^n z^n_{t-1})
    A      = θ + b_a a_{t-1}                         (LIF: b_a = 0, θ = 1)
    mem_t  = clamp(β, 0, 1) mem_{t-1} + u - sg(z_{t-1}) A
    a_t    = ρ a_{t-1} + (1 - ρ) sg(z_{t-1})
    z_t    = H(mem_t - θ - b_a a_t)                  (surrogate gradient backwards)

with sg the stop-gradient (snnTorch's detached reset; the identity in a layer whose
``detach_reset`` is False). The readout: the last layer's spikes
through the readout weights into leaky integrators o_t = clamp(β_o, 0, 1) o_{t-1} + W_o z_t + b_o
(``spike_readout`` last: o after the last step; max: its largest value; mean: the mean of
W_o z_t + b_o over the steps).
"""

from __future__ import annotations

import torch

from .fused import networks_differ
from .nn.alif import ALIF, alif_update


def spiking_sequence(model, data: torch.Tensor):
    """Run ``model`` (a ``LIFNetwork``) on prepared ``data`` ``[T, B, F]`` (normalised and scaled,
    as ``prepare_input`` returns them); return (logits ``[B, C]``, membranes after the last step
    ``[L, B, N]``, detached). Every constant and surrogate is read from each layer; settings of
    snnTorch's ``Leaky`` beyond its defaults are not computed here (``LIFNetwork.fused_reason``
    names them and sends such networks to the per-step path). Forward hooks on the neuron
    modules do not run here, as on the oscillators' fused path.

    >>> from snnspin.config import TrainConfig
    >>> from snnspin.models import build_model
    >>> logits, mem = spiking_sequence(build_model(TrainConfig(model="lif")), torch.rand(64, 2, 1))
    >>> tuple(logits.shape), tuple(mem.shape)
    ((2, 10), (3, 2, 32))
    """
    logits, _, mem = spiking_sequences([model], data.unsqueeze(1))[0]
    return logits, mem


#: What several networks run together must share (``spiking_ensemble_reason``): the loop's shape
#: and the settings it reads once for all; weights, masks, β, the readout's β, S, θ, ρ and b_a may differ.
SHARED = {"model": lambda m: m.config.model, "layers": lambda m: m.config.layers, "width": lambda m: m.config.width,
          "n_inputs": lambda m: m.n_inputs, "classes": lambda m: m.readout.out_features,
          "substeps": lambda m: m.config.substeps, "spike_readout": lambda m: m.config.spike_readout}


def _spike_function(neuron):
    """The layer's own surrogate spike function (ALIF's ``spike``, snnTorch Leaky's ``spike_grad``)."""
    return neuron.spike if isinstance(neuron, ALIF) else neuron.spike_grad


def _fingerprint(function):
    """Equal for two surrogates that compute the same thing: snnTorch's are closures over their slope."""
    key = (getattr(function, "__code__", function), tuple(c.cell_contents for c in (function.__closure__ or ()))
           if getattr(function, "__closure__", None) else ())
    try:
        hash(key)
        return key
    except TypeError:  # a closure over something unhashable: only the same object is the same
        return id(function)


def _layer_settings(model) -> tuple:
    """What the loop reads from each layer's module, not from the config: the surrogate and whether
    the reset's gradient is stopped (either may be set on a module after it was built)."""
    return tuple((_fingerprint(_spike_function(n)), getattr(n, "detach_reset", True)) for n in model.neurons)


def spiking_ensemble_reason(models) -> str | None:
    """Why the ``LIFNetwork``s ``models`` cannot run together in one lean loop (None: they can).

    >>> from snnspin.config import TrainConfig
    >>> from snnspin.models import build_model
    >>> spiking_ensemble_reason([build_model(TrainConfig(model="lif"), s) for s in range(3)]) is None
    True
    >>> spiking_ensemble_reason([build_model(TrainConfig(model="lif")), build_model(TrainConfig(model="alif"))])
    'the networks differ in model (lif, alif)'
    """
    return networks_differ(models, SHARED, more=(_layers_differ,))


def _layers_differ(models) -> str | None:
    if len({_layer_settings(m) for m in models}) > 1:
        return "the networks' layers differ in their surrogate spike function or detach_reset"
    return None


def _stacked(values, like, n):
    """Per network a float, a 0-d or an ``[n]`` tensor → ``[M, 1, n]`` (differentiable)."""
    return torch.stack([torch.as_tensor(v, dtype=like.dtype, device=like.device).expand(n) for v in values]
                       ).unsqueeze(1)


def spiking_sequences(models, data: torch.Tensor):
    """Run M ``LIFNetwork``s together (``spiking_ensemble_reason``) on prepared ``data``
    ``[T, M, B, F]`` (network m reads ``data[:, m]``): per step and layer one batched product
    for all of them, so that the per-operation overhead, which dominates a step at the paper's
    size, is paid once for M networks. Return per network (logits ``[B, C]``, None, membranes
    after the last step ``[L, B, N]``, detached); each network's gradients are those it gets
    alone (tested against one at a time).

    >>> from snnspin.config import TrainConfig
    >>> from snnspin.models import build_model
    >>> models = [build_model(TrainConfig(model="alif"), seed) for seed in range(2)]
    >>> out = spiking_sequences(models, torch.rand(64, 2, 5, 1))
    >>> [tuple(logits.shape) for logits, _, _ in out]
    [(5, 10), (5, 10)]
    """
    if len(models) > 1 and (reason := spiking_ensemble_reason(models)) is not None:
        raise ValueError(f"these networks cannot run together in one loop: {reason}")
    if data.dim() != 4 or data.shape[1] != len(models):
        raise ValueError(f"data for {len(models)} network(s) must be [T, M = {len(models)}, B, F], "
                         f"got shape {tuple(data.shape)}")
    first = models[0]
    c = first.config
    adaptive = c.model == "alif"
    n, classes, count = c.width, first.readout.out_features, len(models)
    like = next(first.parameters())
    transposed = lambda weights: torch.stack(weights).transpose(1, 2)  # noqa: E731 [M, in, out]
    w_ext = [(transposed([m.w_ext[i].effective_weight() for m in models]),
              torch.stack([m.w_ext[i].bias for m in models]).unsqueeze(1)) for i in range(c.layers)]
    w_int = [transposed([m.w_int[i].effective_weight() for m in models]) for i in range(c.layers)]
    betas = [_stacked([m.neurons[i].beta.clamp(0.0, 1.0) for m in models], like, n) for i in range(c.layers)]
    # Leaky: a 0-d buffer (no host sync on a GPU); ALIF: a float
    threshold = [_stacked([m.neurons[i].threshold for m in models], like, n) for i in range(c.layers)]
    rho = [_stacked([m.neurons[i].rho for m in models], like, n) for i in range(c.layers)] if adaptive else None
    strength = [_stacked([m.neurons[i].adapt for m in models], like, n) for i in range(c.layers)] if adaptive else None
    readout = (transposed([m.readout.effective_weight() for m in models]),
               torch.stack([m.readout.bias for m in models]).unsqueeze(1))
    readout_beta = _stacked([m.integrator.beta.clamp(0.0, 1.0) for m in models], like, classes)
    spikes_of = [_spike_function(n_) for n_ in first.neurons]  # each layer's own surrogate (all networks': the same)
    detached = [getattr(n_, "detach_reset", True) for n_ in first.neurons]  # snn.Leaky: always
    gain = _stacked([m.gain for m in models], like, n)
    mode = c.spike_readout

    batch = data.shape[2]
    zeros = data.new_zeros(count, batch, n)
    mem = [zeros] * c.layers
    spikes = [zeros] * c.layers
    adapt = [zeros] * c.layers
    integrator, pooled, steps = data.new_zeros(count, batch, classes), None, 0
    for t in range(data.shape[0]):
        for _ in range(c.substeps):
            signal = data[t]
            for i in range(c.layers):
                syn = torch.baddbmm(w_ext[i][1], signal, w_ext[i][0]).baddbmm_(spikes[i], w_int[i])
                fired = spikes[i].detach() if detached[i] else spikes[i]
                if adaptive:
                    mem[i], adapt[i], level = alif_update(mem[i], adapt[i], fired, gain * syn, betas[i], rho[i],
                                                          strength[i], threshold[i])
                else:
                    mem[i] = betas[i] * mem[i] + gain * syn - fired * threshold[i]
                    level = threshold[i]
                spikes[i] = spikes_of[i](mem[i] - level).to(mem[i].dtype)
                signal = spikes[i]
            drive = torch.baddbmm(readout[1], signal, readout[0])
            if mode == "mean":
                pooled = drive if pooled is None else pooled + drive
                steps += 1
            else:
                integrator = readout_beta * integrator + drive
                if mode == "max":
                    pooled = integrator if pooled is None else torch.maximum(pooled, integrator)
    logits = pooled / steps if mode == "mean" else pooled if mode == "max" else integrator
    membranes = torch.stack(mem, 1).detach()  # [M, L, B, N]
    return [(logits[m], None, membranes[m]) for m in range(count)]
