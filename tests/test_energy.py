"""Energy per inference: counts by hand for each kind of hardware."""

import pytest
import torch

from snnspin.config import TrainConfig
from snnspin.design import energy_pj
from snnspin.energy import MAC_FP32_PJ, NEURON_UPDATE_PJ, SYNOP_PJ, TANH_MACS, measure_energy
from snnspin.models import build_model

DATA = torch.rand(20, 6, 1, dtype=torch.float64) * 16


def test_spintronic_energy_is_the_papers_device_estimate_over_the_sequence():
    model = build_model(TrainConfig(delta_t=2.0))
    # 96 oscillators, 2896 synapses for 20 points × 2 ns = 40 ns
    assert measure_energy(model, DATA)["energy_pj"] == pytest.approx(energy_pj(96, 2896, 40.0))
    assert energy_pj(96, 2896, 40.0) == pytest.approx((96 * 100 + 2896 * 10) * 1e-3 * 40 / 100)


def test_ctrnn_macs_by_hand():
    config = TrainConfig(model="ctrnn", layers=2, width=8, substeps=2)
    model = build_model(config)
    first = int(model.w_ext[0].mask.sum())
    hidden = int(model.w_ext[1].mask.sum()) + sum(int(m.mask.sum()) for m in model.w_int)
    macs = 40 * (first + hidden + 16 * (2 + TANH_MACS)) + 80  # 20 points × 2 sub-steps; readout 8 × 10 once
    r = measure_energy(model, DATA)
    assert r["macs"] == macs and r["energy_pj"] == pytest.approx(macs * MAC_FP32_PJ)


@pytest.mark.parametrize("model_name", ["lif", "alif"])
def test_spiking_synops_are_spikes_times_their_fan_out(model_name):
    config = TrainConfig(model=model_name, layers=2, width=8, gain=3.0)
    model = build_model(config, seed=1).double()
    _, traces = model(DATA, record=True)
    spikes = [s.sum((0, 1)) for s in traces["spk"]]  # per neuron, over time and batch
    out0 = model.w_int[0].mask.sum(0) + model.w_ext[1].mask.sum(0)
    out1 = model.w_int[1].mask.sum(0) + model.readout.mask.sum(0)
    synops = (float((spikes[0] * out0).sum()) + float((spikes[1] * out1).sum())) / 6 + 20 * int(model.w_ext[0].mask.sum())
    r = measure_energy(model, DATA, batch_size=4)  # batches of 4 and 2: the same totals
    assert r["synops"] == pytest.approx(synops)
    assert r["neuron_updates"] == 20 * (16 + 10)
    assert r["energy_pj"] == pytest.approx(synops * SYNOP_PJ + 20 * 26 * NEURON_UPDATE_PJ)
    assert r["spike_rate"] == pytest.approx([float(s.sum()) / (6 * 20 * 8) for s in spikes])
    assert 0 < r["spike_rate"][0] < 1


def test_spiking_energy_needs_one_step_per_point():
    with pytest.raises(ValueError, match="needs substeps = 1"):
        measure_energy(build_model(TrainConfig(model="lif", substeps=2)), DATA)
