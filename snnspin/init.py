"""Data-dependent initialisation from the paper's design rule, the cumulative drive I·Δt ≈ 1.

The rule and its source. Plouet et al. (Sec. IV, eq. 9-11) find that a network of
oscillators trains when the drive a neuron receives over one input point, I·Δt with
I = S ⟨|W|⟩ √N, is of order 1: much less and the input barely moves the neurons, much more
and they saturate or die (x = 0 absorbs: a drive held below γ = 1/τ sends x towards 0,
where it stays). The paper states the rule for its raw-pixel inputs and its weights' scale;
how large the drive really is depends on the data's units. ``drive_init`` therefore measures
it on a batch of the training data and sets it there, layer after layer, in the spirit of
LSUV (Mishkin & Matas, "All you need is a good init", ICLR 2016: rescale each layer's
weights until its statistics on real data hit a target):

1. scale: the layer's input weights W_ext (from the layer below, or from the data for the
   first layer) are multiplied by the one factor k that makes the spread of their drive per
   input point, S·(W_ext u)·Δt less each neuron's mean (its RMS over batch, steps and
   neurons), equal to ``target``. That drive is linear in k (the layers below are already
   set), so k comes from one run of the batch. The recurrent weights W_int keep their
   initialisation (``init_scale``): scaling them with k would move each layer's own loop
   gain, and on weak inputs push it past 1, where the layer drives itself;
2. bias: each neuron's bias cancels the mean of its synaptic sum over the batch and the
   sequence (repeated until it does to 1 %, since the layer's recurrence feeds the bias
   back into the mean), so that its mean drive is b_fixed = 2γ
   (spintronic; the rest point x = 0.5), or its state sits where tanh has its slope (CTRNN);
3. liveness: while more than ``bound`` of the layer's neurons end the batch dead
   (x < 1e-3, ``models.DEAD_BELOW``; CTRNN: saturated, |tanh x| > 0.999), W_ext and W_int
   shrink by ``SHRINK`` (at most ``MAX_SHRINKS`` times; the bias re-centred): the drive
   stays as near I·Δt = target as the data allow without neurons dead at the start, and a
   loop gain past 1 (a CTRNN at the paper's τ = 14 ns saturates on its own) comes down.

The first layer's W_ext carries the input's scale, so the rule sets the input scale too;
``input_scale`` then multiplies the data after it, so that the first layer's drive spreads
``input_scale`` · target (1: the rule itself). The CTRNN has no drive window of
its own; the same rule applies to its S·(W_ext u)·Δt. The LIF twins are not covered (their
threshold sets their own scale).
"""

from __future__ import annotations

import numbers
import warnings

import torch

#: Most centring runs per layer (the layer's recurrence feeds its bias back into its mean).
CENTRING_RUNS = 8
#: A neuron counts as centred when its mean synaptic sum is below this fraction of the layer's spread of it.
CENTRED = 0.01
#: Factor by which a layer's weights shrink while too many of its neurons start dead.
SHRINK = 0.7
#: Most shrink steps per layer (0.7^12 ≈ 0.014).
MAX_SHRINKS = 12
#: Largest target accepted: a drive spread of 100 per input point is already 100 times the rule.
MAX_TARGET = 100.0
#: A layer's input carries no signal, and its weights are not scaled up (with a warning), when
#: its variation over batch and steps is below NO_SIGNAL units of float rounding of its RMS (the
#: first layer: constant data) or below DEEP_FLOOR (deeper layers: their inputs, bounded by 1,
#: then hold only the rounding of a layer at rest).
NO_SIGNAL, DEEP_FLOOR = 16, 1e-5
#: Default bound on the fraction of a layer's neurons dead (or saturated) after the initialisation.
DEAD_BOUND = 0.02


def _input_drive_spread(model, data, layer: int) -> tuple[float, bool]:
    """RMS over [T, B, N] of S·(W_ext u)·Δt less each neuron's mean, u the layer's input, and
    whether u carries a signal (see ``NO_SIGNAL``)."""
    if layer == 0:
        inputs = model.prepare_input(data)
    else:
        _, traces = model(data, record=True)
        inputs = traces["y"][layer - 1]
    weight = model.w_ext[layer].effective_weight()
    inputs = inputs.to(weight.dtype)
    varying = float((inputs - inputs.mean((0, 1))).pow(2).mean().sqrt())
    # the outputs below are bounded by 1: a variation of a few units of rounding is not signal
    rms = float(inputs.pow(2).mean().sqrt())
    floor = NO_SIGNAL * torch.finfo(weight.dtype).eps * rms if layer == 0 else DEEP_FLOOR
    drive = torch.nn.functional.linear(inputs, weight) * model.neurons[layer].gain * model.config.delta_t
    return float((drive - drive.mean((0, 1))).pow(2).mean().sqrt()), varying > floor


def _centre(model, data, layer: int) -> None:
    """Shift the layer's bias by minus each neuron's mean synaptic sum over batch and steps, run
    by run until every mean is below ``CENTRED`` of the sum's spread (or ``CENTRING_RUNS`` runs)."""
    for _ in range(CENTRING_RUNS):
        _, traces = model(data, record=True)
        syn = traces["syn"][layer]
        mean = syn.mean((0, 1))
        if float(mean.abs().max()) <= CENTRED * float(syn.std()):
            return
        model.w_ext[layer].bias.sub_(mean)


def _unhealthy(model, data, layer: int) -> float:
    """Fraction of the layer's neurons dead (spintronic) or saturated (CTRNN) at the end of ``data``."""
    model(data)
    health = model.neuron_health()
    values = health["dead"] if health["dead"] is not None else health["saturated"]
    return float(values[layer])


@torch.no_grad()
def drive_init(model, data: torch.Tensor, target: float = 1.0, bound: float = DEAD_BOUND) -> list[dict]:
    """Set each layer's input weights' scale and bias from ``data`` ``[T, B, F]`` (raw, as the
    model reads it: its input normalisation applies), so that the drive per input point from
    the layer below spreads ``target``, RMS(S·(W_ext u)·Δt less each neuron's mean) (the
    paper's I·Δt ≈ 1; the first layer ``input_scale`` · target, S in 1/ns, Δt in ns), and at
    most ``bound`` of each layer's neurons end the batch dead (x < 1e-3) or, for the CTRNN,
    saturated. The rule and its source are in the module doc.

    Returns one dict per layer: ``factor`` (applied to its input weights; W_int takes only the
    shrinks), ``spread`` reached, ``unhealthy`` (fraction dead or saturated) and ``shrinks``
    (liveness steps taken).

    >>> from snnspin.config import TrainConfig
    >>> from snnspin.models import build_model
    >>> net = build_model(TrainConfig(width=16), 0)
    >>> report = drive_init(net, torch.randn(40, 64, 1) * 3.0 + 5.0)
    >>> all(r["unhealthy"] <= 0.02 for r in report), [r["layer"] for r in report]
    (True, [0, 1, 2])
    """
    if model.config.model not in ("spintronic", "ctrnn"):
        raise ValueError(f"drive_init covers the spintronic network and the CTRNN, not the {model.config.model} "
                         "model (a spiking neuron's threshold sets its own scale)")
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not 0 < target <= MAX_TARGET:
        raise ValueError(f"target must be a number in (0, {MAX_TARGET:g}], got {target!r}")
    target = float(target)
    if not 0.0 <= bound < 1.0:
        raise ValueError(f"bound must be in [0, 1), got {bound!r}")
    if data.dim() != 3 or data.shape[0] == 0 or data.shape[1] == 0:
        raise ValueError(f"drive_init needs a batch [T, B, F] with T, B >= 1, got shape {tuple(data.shape)}")
    data = data.to(model.readout.weight)  # the batch as the model computes: its dtype and device
    report = []
    for layer in range(model.config.layers):
        ext = model.w_ext[layer]
        spread, signal = _input_drive_spread(model, data, layer)
        goal = target * (model.config.input_scale if layer == 0 else 1.0)  # input_scale: a factor on the rule
        signal = signal and spread > 0.0
        if not signal:
            warnings.warn(f"drive_init: no signal reaches layer {layer} on this batch (its input is constant up to "
                          "rounding); its weights keep their scale", RuntimeWarning, stacklevel=2)
        factor = goal / spread if signal else 1.0  # no signal reaches the layer: nothing to scale
        ext.weight.mul_(factor)
        if not torch.isfinite(ext.weight).all():
            raise ValueError(f"drive_init: layer {layer}'s input weights are no longer finite after scaling them by "
                             f"{factor:.3g} (drive spread {spread:.3g} to {goal:.3g}); lower init_drive")
        _centre(model, data, layer)
        shrinks = 0
        while _unhealthy(model, data, layer) > bound and shrinks < MAX_SHRINKS:
            ext.weight.mul_(SHRINK)
            model.w_int[layer].weight.mul_(SHRINK)
            factor *= SHRINK
            shrinks += 1
            _centre(model, data, layer)
        report.append({"layer": layer, "factor": factor, "spread": _input_drive_spread(model, data, layer)[0],
                       "unhealthy": _unhealthy(model, data, layer), "shrinks": shrinks})
    return report
