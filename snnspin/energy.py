"""Energy per inference of a trained network, each kind of model on the hardware it is meant for.

Every figure is measured on the trained network over real sequences (``measure_energy``):
counts of operations times an energy per operation whose source is cited here.

- **Spintronic network, on spintronic devices**: the paper's estimate (``design_rules.energy_pj``,
  after Ross et al. 2023): about 100 fJ per oscillator and 10 fJ per synapse for a 100 ns
  presentation, scaled to the sequence's duration T·Δt.
- **CTRNN, on digital hardware**: multiply-accumulates (MACs) × energy per MAC. Per solver step,
  one MAC per unmasked synapse (input, inter- and intra-layer), and per neuron 2 MACs for the
  state update (decay and gain) plus ``TANH_MACS`` MAC-equivalents for tanh (an assumption:
  a short polynomial or table); the readout's MACs once. Energy per 32-bit float MAC 4.6 pJ
  (multiply 3.7 pJ + add 0.9 pJ, 45 nm, 0.9 V: M. Horowitz, "Computing's energy problem",
  ISSCC 2014), or 0.23 pJ for 8-bit integers (0.2 + 0.03 pJ, same source). Memory access,
  which usually dominates on digital chips, is left out: a lower bound.
- **Spiking twins (LIF, ALIF), on neuromorphic hardware**: synaptic operations (each spike
  times the unmasked synapses it leaves by: to the next layer, back into its own layer and,
  from the last layer, to the readout) × 23.6 pJ, plus neuron updates (every neuron and
  readout integrator, every step) × 52 pJ: the energies per synaptic spike operation and per
  active neuron update of Intel's Loihi (M. Davies et al., "Loihi: a neuromorphic manycore
  processor with on-chip learning", IEEE Micro 38(1), 82-99, 2018, Table 1). The analogue
  input enters the first layer as one synaptic operation per input synapse and step (an
  assumption: a graded input spike per step).

Units: energy in pJ per sequence (one inference), counts per sequence.
"""

from __future__ import annotations

import torch

from .config import SPIKING

#: Energies per operation, pJ, with their sources (module docstring).
MAC_FP32_PJ = 4.6  # Horowitz, ISSCC 2014, 45 nm: fp32 mult 3.7 + add 0.9
MAC_INT8_PJ = 0.23  # Horowitz, ISSCC 2014, 45 nm: int8 mult 0.2 + add 0.03
SYNOP_PJ = 23.6  # Davies et al., IEEE Micro 2018, Loihi: per synaptic spike operation
NEURON_UPDATE_PJ = 52.0  # Davies et al., IEEE Micro 2018, Loihi: per active neuron update
#: tanh counted as this many MACs (an assumption).
TANH_MACS = 4

SOURCES = {
    "spintronic": "Plouet et al. (after Ross et al. 2023): 100 fJ per oscillator, 10 fJ per synapse per 100 ns",
    "ctrnn": "Horowitz, ISSCC 2014 (45 nm): 4.6 pJ per fp32 MAC (0.23 pJ int8); memory access not counted",
    "lif": "Davies et al., IEEE Micro 2018 (Loihi): 23.6 pJ per synaptic spike op, 52 pJ per neuron update",
}


def _synapse_counts(model) -> dict:
    """Unmasked synapses: into the first layer, between neurons per solver step, and the readout."""
    first = int(model.w_ext[0].mask.sum())
    hidden = sum(int(m.mask.sum()) for m in list(model.w_ext)[1:]) + sum(int(m.mask.sum()) for m in model.w_int)
    return {"input": first, "hidden": hidden, "readout": int(model.readout.mask.sum())}


def _fan_out(model) -> list[torch.Tensor]:
    """Per layer ``[N]``: the unmasked synapses each neuron's spike travels along."""
    out = []
    layers = len(model.w_int)
    for layer in range(layers):
        count = model.w_int[layer].mask.sum(0).float()  # back into its own layer
        if layer + 1 < layers:
            count = count + model.w_ext[layer + 1].mask.sum(0).float()
        else:
            count = count + model.readout.mask.sum(0).float()
        out.append(count)
    return out


@torch.no_grad()
def measure_energy(model, data: torch.Tensor, batch_size: int = 500) -> dict:
    """Energy per inference (pJ) of ``model`` over ``data`` ``[T, B, F]``, as its kind of hardware
    spends it (see the module docstring), with the counts behind it.

    Keys: ``energy_pj`` (per sequence), ``hardware``, ``source``; for spiking models also
    ``spike_rate`` (per layer, spikes per neuron per step), ``synops`` and ``neuron_updates``
    per sequence; for the CTRNN ``macs`` per sequence and ``energy_pj_int8``.

    >>> from snnspin.config import TrainConfig
    >>> from snnspin.models import build_model
    >>> r = measure_energy(build_model(TrainConfig()), torch.rand(64, 4, 1) * 16)
    >>> round(r["energy_pj"], 2), r["hardware"]
    (24.68, 'spintronic oscillators')
    """
    from .design_rules import energy_pj

    config = model.config
    steps = data.shape[0] * config.substeps
    synapses = _synapse_counts(model)
    neurons = config.layers * config.width
    if config.model == "spintronic":
        counts = model.counts()
        return {"energy_pj": energy_pj(counts["neurons"], counts["synapses"], data.shape[0] * config.delta_t),
                "hardware": "spintronic oscillators", "source": SOURCES["spintronic"]}
    if config.model == "ctrnn":
        macs = steps * (synapses["input"] + synapses["hidden"] + neurons * (2 + TANH_MACS)) + synapses["readout"]
        return {"energy_pj": macs * MAC_FP32_PJ, "energy_pj_int8": macs * MAC_INT8_PJ, "macs": macs,
                "hardware": "digital (fp32 MACs)", "source": SOURCES["ctrnn"]}
    if config.model not in SPIKING:
        raise ValueError(f"no energy model for {config.model!r}")
    if config.substeps != 1:  # the recorded spikes are those at the end of each input point
        raise ValueError("spikes are counted once per input point: energy of a spiking twin needs substeps = 1")
    fan_out = _fan_out(model)
    spikes = torch.zeros(config.layers, dtype=torch.float64)
    synops = 0.0
    for start in range(0, data.shape[1], batch_size):
        _, traces = model(data[:, start : start + batch_size], record=True)
        for layer, spk in enumerate(traces["spk"]):  # [T, B, N] at the end of each input point
            spikes[layer] += float(spk.sum())
            synops += float((spk.sum((0, 1)).double() * fan_out[layer].double().to(spk.device)).sum())
    n = data.shape[1]
    synops = synops / n + steps * synapses["input"]
    updates = steps * (neurons + model.readout.out_features)  # the readout integrators update too
    return {"energy_pj": synops * SYNOP_PJ + updates * NEURON_UPDATE_PJ, "synops": synops,
            "neuron_updates": updates, "spike_rate": (spikes / (n * data.shape[0] * config.width)).tolist(),
            "hardware": "neuromorphic (Loihi)", "source": SOURCES["lif"]}
