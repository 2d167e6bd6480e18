"""The paper's network and its twins: counts, masks, recording, substeps."""

import pytest
import torch
from torch.nn import functional as F

from snnspin.config import TrainConfig
from snnspin.connectivity import MaskedLinear, random_mask
from snnspin.data import Hold
from snnspin.models import CTRNNNetwork, LIFNetwork, SpintronicNetwork, build_model

MODELS = ["spintronic", "ctrnn", "lif"]


@pytest.mark.parametrize("model", MODELS)
def test_paper_counts(model):
    assert build_model(TrainConfig(model=model)).counts() == {"neurons": 96, "synapses": 2896}


def test_counts_follow_densities():
    cfg = TrainConfig(d_inter=1.0, d_intra=0.0, layers=2, width=10)
    # inter: 10·1 + 10·10, intra: none, readout 10·10
    assert build_model(cfg).counts() == {"neurons": 20, "synapses": 10 + 100 + 100}


def test_random_mask_exact_count_and_seeded():
    a = random_mask(32, 32, 0.3, torch.Generator().manual_seed(1))
    b = random_mask(32, 32, 0.3, torch.Generator().manual_seed(1))
    assert int(a.sum()) == round(0.3 * 1024) and torch.equal(a, b)
    with pytest.raises(ValueError, match="density must be in"):
        random_mask(2, 2, 1.5)


@pytest.mark.parametrize("model", MODELS)
def test_masked_weights_are_zero_and_get_zero_gradient(model):
    net = build_model(TrainConfig(model=model), seed=3)
    log_probs = net(torch.rand(16, 8, 1) * 16)
    F.nll_loss(log_probs, torch.arange(8)).backward()
    layers = [m for m in net.modules() if isinstance(m, MaskedLinear)]
    assert any(not bool(m.mask.all()) for m in layers)
    for m in layers:
        assert torch.all(m.weight[~m.mask] == 0)
        assert torch.all(m.weight.grad[~m.mask] == 0)
    assert any(m.weight.grad[m.mask].abs().sum() > 0 for m in layers)


def test_masks_saved_with_model_and_drawn_from_seed():
    a, b, c = SpintronicNetwork(TrainConfig(), 0), SpintronicNetwork(TrainConfig(), 0), SpintronicNetwork(TrainConfig(), 1)
    keys = [k for k in a.state_dict() if k.endswith("mask")]
    assert len(keys) == 7  # 3 inter, 3 intra, readout
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in keys)
    assert not torch.equal(a.state_dict()["w_int.0.mask"], c.state_dict()["w_int.0.mask"])


def test_silent_network_stays_at_rest():
    net = SpintronicNetwork(TrainConfig())
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    _, traces = net(torch.rand(10, 3, 1) * 16, record=True)
    for layer in range(3):
        assert torch.allclose(traces["x"][layer], torch.full((10, 3, 32), 0.5), atol=1e-6)
        assert torch.allclose(traces["y"][layer], torch.zeros(10, 3, 32), atol=1e-6)


@pytest.mark.parametrize("model, names", [("spintronic", {"x", "y", "syn"}), ("ctrnn", {"x", "y", "syn"}),
                                         ("lif", {"mem", "spk", "syn"})])
def test_record_shapes(model, names):
    net = build_model(TrainConfig(model=model, layers=2, width=5))
    log_probs, traces = net(torch.rand(7, 4, 1), record=True)
    assert log_probs.shape == (4, 10)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(4))
    assert set(traces) == names
    assert all(len(v) == 2 and v[0].shape == (7, 4, 5) for v in traces.values())


def test_spintronic_states_bounded_after_training_scale_weights():
    net = SpintronicNetwork(TrainConfig(init_scale=50.0))
    _, traces = net(torch.rand(64, 4, 1) * 16, record=True)
    for x in traces["x"]:
        assert torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1


@pytest.mark.parametrize("model", MODELS)
def test_substeps_equal_holding_the_input(model):
    data = torch.rand(12, 3, 1) * 16
    fine = build_model(TrainConfig(model=model, delta_t=2.0, substeps=2), seed=5)
    held = build_model(TrainConfig(model=model, delta_t=1.0, substeps=1), seed=5)
    held_data = torch.stack([Hold(2)(data[:, b]) for b in range(3)], dim=1)
    assert torch.allclose(fine(data), held(held_data), atol=1e-6)


def test_ctrnn_and_lif_classes():
    assert isinstance(build_model(TrainConfig(model="ctrnn")), CTRNNNetwork)
    assert isinstance(build_model(TrainConfig(model="lif")), LIFNetwork)


def test_bad_data_shape_and_values():
    net = build_model(TrainConfig(layers=1, width=4))
    with pytest.raises(ValueError, match=r"time first \[T, B, F\]"):
        net(torch.rand(64, 1))
    with pytest.raises(ValueError, match="data contains NaN"):
        net(torch.full((3, 2, 1), float("inf")))
    for model in ("spintronic", "lif"):  # an empty sequence or batch gives no logits worth reading
        for shape in ((0, 2, 1), (3, 0, 1)):
            with pytest.raises(ValueError, match=r"at least one time step and one series, got shape"):
                build_model(TrainConfig(model=model, layers=1, width=4))(torch.rand(shape))


@pytest.mark.parametrize("changes, match", [
    (dict(model="gru"), "model must be one of"),
    (dict(tau=0.0), "tau must be > 0"),
    (dict(d_intra=1.5), r"d_intra must be in \[0, 1\]"),
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(readout="z"), "readout must be one of"),
])
def test_config_validation(changes, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**changes)


def test_config_json_round_trip_and_unknown_fields():
    cfg = TrainConfig(model="lif", tau=3.0, seeds=4)
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    assert cfg.seed_list() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="unknown config fields: colour"):
        TrainConfig.from_dict({"colour": "red"})


@pytest.mark.parametrize("model", ["spintronic", "ctrnn", "lif", "alif"])
def test_every_model_runs_and_trains_in_float64(model):
    net = build_model(TrainConfig(model=model, width=6), 0).double()
    data = torch.rand(8, 3, 1, dtype=torch.float64) * 4
    log_probs = net(data)
    assert log_probs.dtype == torch.float64
    torch.nn.functional.nll_loss(log_probs, torch.arange(3)).backward()
    assert all(p.grad.dtype == torch.float64 for p in net.parameters() if p.grad is not None)


def test_settings_no_engine_honours_are_refused():
    net = build_model(TrainConfig(width=4), 0)
    net.filters[1].x0 = 0.2
    with pytest.raises(ValueError, match=r"filters\[1\].x0 does not apply inside the network"):
        net(torch.rand(3, 2, 1))
    for changes, match in ((dict(learn_tau=True), "learn_tau"), (dict(readout="x"), "readout='x'"),
                           (dict(method="rk4"), "method='rk4'")):
        with pytest.raises(ValueError, match=match + ".* does not apply to the spiking twins"):
            build_model(TrainConfig(model="lif", **changes))


def test_lif_twin_deepcopies_after_a_forward():
    import copy

    net = build_model(TrainConfig(model="lif", width=4), 0)
    net(torch.rand(5, 2, 1)).sum().backward()
    assert torch.equal(copy.deepcopy(net)(torch.ones(5, 2, 1)), net(torch.ones(5, 2, 1)))


def test_a_neuron_held_at_the_floor_counts_as_dead():
    net = build_model(TrainConfig(width=4, layers=2, x_min=0.01), 0)
    net.final_states = torch.tensor([[[0.01, 0.0100005, 0.5, 0.02]], [[0.5, 0.5, 0.5, 0.0005]]])
    assert net.neuron_health()["dead"] == [0.5, 0.25]  # at the floor (≤ 1.001 x_min), and below 1e-3


def test_the_paper_2pi_preset_is_the_paper_with_tau_over_2pi():
    import math

    from snnspin.presets import preset_config

    literal, reading = preset_config("spintronic", "paper"), preset_config("spintronic", "paper-2pi")
    assert reading.tau == pytest.approx(14.12 / (2 * math.pi)) and reading.epochs == 100
    assert reading.replace(tau=14.12, epochs=30) == literal
