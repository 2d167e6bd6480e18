"""Data-dependent initialisation from the paper's design rule: the cumulative drive I·Δt ≈ 1.

Plouet et al. (Sec. IV, eq. 9-11) find that training works when the drive a neuron receives
over one input point, I·Δt, is of order 1: much less and the input barely moves the neuron,
much more and the neurons saturate or die (x = 0 absorbs: a drive held below γ = 1/τ sends x
towards 0, where it stays). How large I·Δt is depends on the data's units and on the weights'
scale, which is why presets tuned on raw pixels fail on other data. ``drive_init`` therefore
sets it from a batch of the training data, layer after layer, in the spirit of LSUV
(Mishkin & Matas, "All you need is a good init", ICLR 2016: scale each layer's weights until
its output statistics on real data hit a target):

- spintronic layers: the bias of each neuron cancels the mean of its synaptic sum over the
  batch and the sequence, so that the mean drive is b_fixed = 2γ (the rest point 0.5: alive);
  then the layer's input and recurrent weights are scaled together so that the standard
  deviation of the drive's variable part, S·syn·Δt, is ``target`` (1 by default);
- CTRNN layers: the same bias rule, then weights scaled so that the state x has standard
  deviation ``target``, where tanh is neither linear nor saturated.

Three passes per layer (the recurrent weights feed the statistics back), layers in order.
The LIF twin is not covered (its threshold sets its own scale).
"""

from __future__ import annotations

import torch

#: Passes of measure-and-rescale per layer.
PASSES = 3


def _statistic(model, traces, layer):
    """The quantity whose spread ``drive_init`` sets: S·syn·Δt (spintronic) or x (CTRNN), [T, B, N]."""
    if hasattr(model, "filters"):  # oscillators
        return traces["syn"][layer] * model.neurons[layer].gain * model.config.delta_t
    return traces["x"][layer]


@torch.no_grad()
def drive_init(model, data: torch.Tensor, target: float = 1.0, lift: float = 1.0):
    """Set each layer's biases and weight scale from ``data`` ``[T, B, F]`` (see module doc).

    Returns a list of dicts per layer: the factor applied to its weights and the spread
    reached. The data should be what the model will be trained on (a few hundred series).

    >>> from snnspin.config import TrainConfig
    >>> from snnspin.models import build_model
    >>> net = build_model(TrainConfig(width=8), 0)
    >>> report = drive_init(net, torch.rand(64, 100, 1) * 16)
    >>> [round(r["spread"], 1) for r in report]
    [1.0, 1.0, 1.0]
    """
    if not hasattr(model, "state_x") or model.config.model == "lif":
        raise ValueError("init='drive' covers the spintronic network and the CTRNN, not the LIF twin")
    if not (isinstance(target, (int, float)) and target > 0):
        raise ValueError(f"target must be a positive number, got {target!r}")
    report = []
    for layer in range(model.config.layers):
        ext, intra = model.w_ext[layer], model.w_int[layer]
        factor = 1.0
        for _ in range(PASSES):
            _, traces = model(data, record=True)
            syn = traces["syn"][layer]
            spread_syn = syn.std((0, 1)) if hasattr(model, "filters") else torch.zeros_like(syn[0, 0])
            ext.bias -= syn.mean((0, 1)) - lift * spread_syn  # mean drive b_fixed + lift·(its spread)
            _, traces = model(data, record=True)
            spread = float(_statistic(model, traces, layer).std())
            if spread == 0.0:
                break
            scale = target / spread
            ext.weight.mul_(scale)
            intra.weight.mul_(scale)
            ext.bias.mul_(scale)
            factor *= scale
        _, traces = model(data, record=True)
        report.append({"layer": layer, "factor": factor, "spread": float(_statistic(model, traces, layer).std())})
    return report
