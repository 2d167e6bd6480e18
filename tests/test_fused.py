"""The fused sequence path against the per-step reference: loss and every gradient."""

import warnings

import pytest
import torch
from torch.nn import functional as F

from snnspin import native, pointwise
from snnspin.config import TrainConfig
from snnspin.models import build_model

# the fused path on CPU runs the native kernels when a C compiler is found; the torch kernels
# (the GPU's, and the fallback) are checked against the reference path too
KERNELS = [pytest.param(pointwise.TORCH, id="torch-kernels"),
           pytest.param(pointwise.NATIVE, id="native-kernels",
                        marks=pytest.mark.skipif(not native.available(), reason="no C compiler"))]

CASES = [
    dict(),
    dict(substeps=3, delta_t=2.0),
    dict(layers=2, d_intra=1.0, d_inter=0.3, readout="x"),
    dict(learn_tau=True, tau=3.0),
    dict(layers=4, width=8, init_scale=4.0),
    dict(mismatch=0.1, weight_bits=5),  # a chip: per-neuron τ (σ, Q) and quantised weights
    dict(width=64, layers=3, substeps=2, delta_t=2.0),  # layer by layer (fused_layerwise.LAYERWISE_FROM)
    dict(width=128, learn_tau=True, layers=2, readout="x"),
    dict(readout_time="mean"),  # the readout of every step's y: the sums the diagonal Functions return
    dict(readout_time="mean", substeps=3, delta_t=2.0, learn_tau=True, tau=3.0, layers=2),
    dict(readout_time="mean", width=64, mismatch=0.1),
]


def _compare(model, changes, dtype, tol, near_zero_growth=False):
    data = (torch.rand(16, 6, 1, generator=torch.Generator().manual_seed(0)) * 16).to(dtype)
    targets = torch.arange(6) % 10
    results = []
    for engine in ("reference", "fused"):
        config = TrainConfig(model=model, engine=engine, **changes)
        torch.set_default_dtype(dtype)
        try:
            net = build_model(config, 2)
            if near_zero_growth:  # drive I = γ: a = I - γ ≈ 0, the series branch of the exact step
                with torch.no_grad():
                    for m in list(net.w_ext) + list(net.w_int):
                        m.weight.mul_(1e-7)
                    for m in net.w_ext:
                        m.bias.fill_(-(1 / config.tau) / config.gain)
            loss = F.nll_loss(net(data), targets)
            loss.backward()
            results.append((loss.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}))
        finally:
            torch.set_default_dtype(torch.float32)
    (loss_ref, g_ref), (loss_fused, g_fused) = results
    assert abs(float(loss_ref - loss_fused)) <= tol * abs(float(loss_ref))
    for name in g_ref:
        scale = float(g_ref[name].abs().max()) + 1e-30
        assert float((g_ref[name] - g_fused[name]).abs().max()) <= tol * scale, name


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("model", ["spintronic", "ctrnn"])
@pytest.mark.parametrize("changes", CASES)
def test_fused_matches_reference_float64(model, changes, kernels):
    with pointwise.using(kernels):
        _compare(model, changes, torch.float64, 1e-12)


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("model", ["spintronic", "ctrnn"])
def test_fused_matches_reference_float32(model, kernels):
    with pointwise.using(kernels):
        _compare(model, dict(substeps=2, delta_t=2.0), torch.float32, 1e-5)


@pytest.mark.parametrize("kernels", KERNELS)
def test_fused_small_growth_branch(kernels):
    with pointwise.using(kernels):
        _compare("spintronic", dict(layers=2), torch.float64, 1e-12, near_zero_growth=True)


@pytest.mark.parametrize("kernels", KERNELS)
def test_fused_gradcheck_float64(kernels):
    torch.set_default_dtype(torch.float64)
    try:
        net = build_model(TrainConfig(layers=2, width=3, tau=2.0, d_intra=1.0, d_inter=1.0, learn_tau=True), 0)
    finally:
        torch.set_default_dtype(torch.float32)
    data = torch.rand(5, 2, 1, dtype=torch.float64) * 4
    names = [n for n, _ in net.named_parameters()]

    def run(*params):
        return torch.func.functional_call(net, dict(zip(names, params)), (data,))

    params = tuple(p.detach().clone().requires_grad_() for p in net.parameters())
    with pointwise.using(kernels):
        assert torch.autograd.gradcheck(run, params)


def test_fused_is_default_and_reference_on_request():
    net, data = build_model(TrainConfig()), torch.zeros(2, 1, 1)
    assert net._use_fused(False, data)
    assert not net._use_fused(True, data)
    assert not build_model(TrainConfig(engine="reference"))._use_fused(False, data)


def test_unsupported_stepper_falls_back_once_or_errors():
    data = torch.rand(4, 2, 1)
    net = build_model(TrainConfig(method="rk4", layers=1, width=3))
    with pytest.warns(RuntimeWarning, match="reference path: layer 0: the fused path integrates with the exact stepper only"):
        net(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net(data)  # said once
    with pytest.raises(ValueError, match="engine='fused' is not available"):
        build_model(TrainConfig(method="euler", engine="fused", layers=1, width=3))(data)


def _loss_and_grads_of(config, data, seeding=None):
    """Loss, every gradient and the final states in float64; the thermal draws from each layer's
    generator seeded by ``seeding`` (an int), from torch's global RNG seeded by 3 ("global"), or
    unseeded (None)."""
    from snnspin.device import seed_noise

    torch.set_default_dtype(torch.float64)
    try:
        net = build_model(config, 2)
        if seeding == "global":
            torch.manual_seed(3)
        elif seeding is not None:
            seed_noise(net, seeding)
        loss = F.nll_loss(net(data), torch.arange(data.shape[1]) % 10)
        loss.backward()
    finally:
        torch.set_default_dtype(torch.float32)
    return float(loss.detach()), {n: p.grad.clone() for n, p in net.named_parameters()}, net.final_states


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("seeding", ["per-layer", "global"])
@pytest.mark.parametrize("changes", [
    dict(thermal_power=0.01, learn_tau=True),
    dict(thermal_power=0.05, x_min=0.02, substeps=2, delta_t=2.0, mismatch=0.1, layers=2, d_intra=1.0),
    dict(thermal_power=0.01, width=128),  # layer by layer: the draws by step, not by diagonal
    dict(thermal_power=0.01, readout_time="mean"),
])
def test_thermal_noise_fused_matches_reference(changes, seeding, kernels):
    """Thermal noise on the fused path: the same draws as the per-step path (same generators, same
    order), so loss, every gradient and the final states agree to 1e-12 in float64; and the noise
    really acts (the noise-free loss differs)."""
    data = torch.rand(16, 6, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 16
    seed = 5 if seeding == "per-layer" else seeding  # each layer's own generator, or the global RNG
    with pointwise.using(kernels):
        loss_ref, g_ref, x_ref = _loss_and_grads_of(TrainConfig(engine="reference", **changes), data, seed)
        loss_fused, g_fused, x_fused = _loss_and_grads_of(TrainConfig(engine="fused", **changes), data, seed)
        loss_quiet, _, _ = _loss_and_grads_of(TrainConfig(engine="fused", **{**changes, "thermal_power": 0.0}),
                                              data, seed)
    assert abs(loss_quiet - loss_ref) > 1e-6
    assert abs(loss_ref - loss_fused) <= 1e-12 * loss_ref
    assert float((x_ref - x_fused).abs().max()) <= 1e-12
    for name, want in g_ref.items():
        assert float((g_fused[name] - want).abs().max()) <= 1e-12 * (float(want.abs().max()) + 1e-30), name


def test_thermal_noise_draws_follow_the_seed_on_the_fused_path():
    """Same seed, same noise; another seed, other noise (the fused path draws from the layers' generators)."""
    from snnspin.device import seed_noise

    net = build_model(TrainConfig(thermal_power=0.01, engine="fused", layers=2, width=4), 0)
    data = torch.rand(8, 3, 1) * 16
    outputs = []
    for seed in (1, 1, 2):
        seed_noise(net, seed)
        outputs.append(net(data))
    assert torch.equal(outputs[0], outputs[1]) and not torch.equal(outputs[0], outputs[2])


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("model", ["spintronic", "ctrnn"])
def test_fused_with_inputs_wider_than_a_layer(model, kernels):
    """6 input features into layers of 4: the stacked weights pad every layer's signal to 6 columns."""
    from snnspin.models import CTRNNNetwork, SpintronicNetwork

    cls = SpintronicNetwork if model == "spintronic" else CTRNNNetwork
    data = torch.rand(10, 3, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 4
    targets = torch.arange(3)
    grads = []
    for engine in ("reference", "fused"):
        torch.set_default_dtype(torch.float64)
        try:
            net = cls(TrainConfig(model=model, engine=engine, width=4, layers=3), seed=0, n_inputs=6)
        finally:
            torch.set_default_dtype(torch.float32)
        with pointwise.using(kernels):
            F.nll_loss(net(data), targets).backward()
        grads.append({n: p.grad.clone() for n, p in net.named_parameters()})
    for name, want in grads[0].items():
        assert torch.allclose(grads[1][name], want, rtol=1e-10, atol=1e-12), name


def _set(layer_list, index, name, value):
    def change(net):
        setattr(getattr(net, layer_list)[index], name, value)
    return change


W = 6  # width of the networks below


def _ramp(first, last):
    """One value per neuron, from ``first`` to ``last``."""
    return torch.linspace(first, last, W, dtype=torch.float64)


PER_LAYER_SETTINGS = {
    "tau per neuron (layer 1)": _set("neurons", 1, "tau", _ramp(1.5, 6.0)),
    "gain (layer 2)": _set("neurons", 2, "gain", 0.9),
    "gain per neuron (layer 0)": _set("neurons", 0, "gain", _ramp(0.2, 0.8)),
    "bias_fixed (layer 0)": _set("neurons", 0, "bias_fixed", 0.8),
    "bias_fixed per neuron (layer 2)": _set("neurons", 2, "bias_fixed", _ramp(0.7, 1.2)),
    "q (layer 1)": _set("neurons", 1, "q", 0.4),
    "sigma per neuron (layer 2)": _set("neurons", 2, "sigma", _ramp(0.8, 1.4)),
    "x0 (layer 0)": _set("neurons", 0, "x0", 0.3),
    "x0 per neuron (layer 1)": _set("neurons", 1, "x0", _ramp(0.1, 0.9)),
    "f_cut (layer 1)": _set("filters", 1, "f_cut_mhz", 40.0),
    "f_cut per neuron (layer 2)": _set("filters", 2, "f_cut_mhz", _ramp(1.0, 90.0)),
    "filter dt (layer 0)": _set("filters", 0, "dt", 0.5),
    "held-drive sub-steps (layer 1)": _set("neurons", 1, "substeps", 3),
    "floor x_min (layer 2)": _set("neurons", 2, "x_min", 0.6),  # above the rest point: it holds often
}
CTRNN_SETTINGS = {  # the ones a CTRNN layer has
    **{k: PER_LAYER_SETTINGS[k] for k in ("tau per neuron (layer 1)", "gain (layer 2)", "gain per neuron (layer 0)")},
    "held-drive sub-steps (layer 0)": _set("neurons", 0, "substeps", 4),
}


def _loss_and_grads(model, engine, change, learn_tau, kernels):
    torch.set_default_dtype(torch.float64)
    try:
        net = build_model(TrainConfig(model=model, engine=engine, width=W, layers=3, tau=3.0, gain=0.5,
                                      learn_tau=learn_tau, init_scale=2.0), 4)
        if change is not None:
            change(net)
    finally:
        torch.set_default_dtype(torch.float32)
    data = torch.rand(12, 5, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 8
    with pointwise.using(kernels):
        loss = F.nll_loss(net(data), torch.arange(5))
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in net.named_parameters()}


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("learn_tau", [False, True])
@pytest.mark.parametrize("model, setting", [("spintronic", k) for k in PER_LAYER_SETTINGS] +
                         [("ctrnn", k) for k in CTRNN_SETTINGS])
def test_every_per_layer_setting_reaches_the_fused_path(model, setting, learn_tau, kernels):
    """Each layer's own settings, changed one at a time: fused = reference to 1e-12 in float64,
    and the setting really changes the result."""
    change = (PER_LAYER_SETTINGS if model == "spintronic" else CTRNN_SETTINGS)[setting]
    if learn_tau and "tau" in setting:
        pytest.skip("a per-neuron τ assigned as a buffer replaces the trainable one")
    loss_ref, g_ref = _loss_and_grads(model, "reference", change, learn_tau, kernels)
    loss_fused, g_fused = _loss_and_grads(model, "fused", change, learn_tau, kernels)
    loss_plain, _ = _loss_and_grads(model, "reference", None, learn_tau, kernels)
    if "sub-steps" not in setting:  # held-drive sub-steps of the exact step leave the result as it is
        assert abs(loss_plain - loss_ref) > 1e-9, "the setting changed nothing: the test would not see it ignored"
    assert abs(loss_ref - loss_fused) <= 1e-12 * abs(loss_ref)
    assert g_ref.keys() == g_fused.keys()
    for name, want in g_ref.items():
        assert float((g_fused[name] - want).abs().max()) <= 1e-12 * (float(want.abs().max()) + 1e-30), name


@pytest.mark.parametrize("change, reason", [
    (_set("neurons", 1, "method", "euler"), "layer 1: the fused path integrates with the exact stepper only"),
    (_set("neurons", 2, "dt", 0.5), "different steps dt"),
    (_set("filters", 0, "f_cut_mhz", torch.nn.Parameter(torch.tensor(2.0))), "layer 0: a trainable f_cut_mhz"),
    (_set("neurons", 1, "q", torch.nn.Parameter(torch.tensor(0.1))), "layer 1: a trainable q"),
])
def test_what_the_fused_path_cannot_represent_is_refused_or_routed(change, reason):
    data = torch.rand(6, 2, 1) * 4
    for engine in ("fused", "auto"):
        net = build_model(TrainConfig(engine=engine, width=4), 0)
        change(net)
        if engine == "fused":
            with pytest.raises(ValueError, match=reason):
                net(data)
        else:
            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                fallback = net(data)
            net.config = net.config.replace(engine="reference")
            assert torch.equal(fallback, net(data))  # auto took the reference path


def test_input_width_is_checked_by_every_engine():
    for engine in ("fused", "reference"):
        net = build_model(TrainConfig(engine=engine, width=4), 0)
        with pytest.raises(ValueError, match=r"data have 2 features .* the model takes 1"):
            net(torch.rand(5, 3, 2))


def test_integer_data_are_promoted():
    net = build_model(TrainConfig(width=4), 0)
    data = torch.randint(0, 17, (5, 3, 1))
    assert torch.equal(net(data), net(data.float()))


def test_floor_lets_a_dead_oscillator_recover_in_both_engines():
    """x_min: after a strong negative pulse x stays at the floor, and recovers under the bias alone;
    without it x falls to ~1e-34 and is still near 0 at the end."""
    data = torch.zeros(60, 1, 1)
    data[:10] = -40.0  # drives every layer-0 neuron far below threshold
    finals = {}
    for x_min in (0.0, 1e-3):
        for engine in ("reference", "fused"):
            torch.set_default_dtype(torch.float64)
            try:
                net = build_model(TrainConfig(width=4, layers=1, tau=2.0, gain=1.0, d_inter=1.0, x_min=x_min,
                                              engine=engine), 0)
                with torch.no_grad():
                    net.w_ext[0].weight.fill_(1.0)
                    net.w_ext[0].bias.zero_()
                    net.w_int[0].weight.zero_()
                net(data.double())
            finally:
                torch.set_default_dtype(torch.float32)
            finals[x_min, engine] = net.final_states[0].clone()
    assert torch.allclose(finals[0.0, "fused"], finals[0.0, "reference"], rtol=1e-12, atol=0)
    assert torch.allclose(finals[1e-3, "fused"], finals[1e-3, "reference"], rtol=1e-12, atol=0)
    assert float(finals[0.0, "reference"].max()) < 1e-3  # dead without a floor
    assert float(finals[1e-3, "reference"].min()) > 0.4  # 50 ns of growth at γ from 1e-3: back near 0.5


def test_the_fused_functions_called_directly_refuse_what_they_cannot_represent():
    from snnspin.fused import fused_ctrnn_sequence, fused_oscillator_sequence

    for model, run in (("spintronic", fused_oscillator_sequence), ("ctrnn", fused_ctrnn_sequence)):
        net = build_model(TrainConfig(model=model, width=4), 0)
        net.neurons[1].method = "rk4"
        with pytest.raises(ValueError, match="cannot run this model: layer 1: .* exact stepper only"):
            run(net, torch.rand(3, 2, 1))


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("every", [1, 3, 7])
@pytest.mark.parametrize("model, changes", [
    ("spintronic", dict()),
    ("spintronic", dict(learn_tau=True, substeps=2, delta_t=2.0, layers=2, d_intra=1.0)),
    ("spintronic", dict(thermal_power=0.02, x_min=0.01, mismatch=0.1)),
    ("ctrnn", dict()),
    ("ctrnn", dict(learn_tau=True, layers=4, width=5)),
    ("spintronic", dict(width=64, thermal_power=0.01)),  # layer by layer
    ("ctrnn", dict(width=64, layers=2)),
    ("spintronic", dict(width=128, thermal_power=0.01, x_min=0.01)),
    ("ctrnn", dict(width=128, learn_tau=True)),
    ("spintronic", dict(readout_time="mean", thermal_power=0.01)),  # the sum over steps passes from segment to segment
    ("ctrnn", dict(readout_time="mean", substeps=2, delta_t=2.0)),
])
def test_checkpointed_segments_give_the_full_bptt_gradients(model, changes, every, kernels):
    """checkpoint_every: the sequence runs in recomputed segments that pass their state (and its
    gradient) on; loss, every gradient and the final states equal the per-step reference path's
    full BPTT to 1e-12 in float64 (with noise: the same draws)."""
    data = torch.rand(16, 5, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 16
    seeding = 4 if changes.get("thermal_power") else None
    with pointwise.using(kernels):
        want = _loss_and_grads_of(TrainConfig(model=model, engine="reference", **changes), data, seeding)
        got = _loss_and_grads_of(TrainConfig(model=model, engine="fused", checkpoint_every=every, **changes), data,
                                 seeding)
    assert abs(got[0] - want[0]) <= 1e-12 * want[0]
    assert float((got[2] - want[2]).abs().max()) <= 1e-12 * max(1.0, float(want[2].abs().max()))
    for name, g in want[1].items():
        assert float((got[1][name] - g).abs().max()) <= 1e-12 * (float(g.abs().max()) + 1e-30), name


def test_checkpointed_segments_hold_one_segment_of_activations():
    """What the autograd graph keeps for the backward: with segments of 8 of 64 input points,
    under a fifth of what the whole sequence keeps."""
    def saved_bytes(every):
        net = build_model(TrainConfig(checkpoint_every=every, width=16), 0)
        total = [0]

        def pack(t):
            total[0] += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = F.nll_loss(net(torch.rand(64, 8, 1) * 16), torch.zeros(8, dtype=torch.long))
        loss.backward()
        return total[0]

    assert saved_bytes(8) < saved_bytes(0) / 5


@pytest.mark.parametrize("changes, message", [
    (dict(model="lif", checkpoint_every=4), "checkpoint_every recomputes segments of the oscillators' and CTRNN's fused path, which the lif"),
    (dict(engine="reference", checkpoint_every=4), "which engine=reference does not use"),
    (dict(checkpoint_every=-1), r"checkpoint_every must be >= 0"),
])
def test_checkpointing_is_refused_where_it_cannot_run(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_checkpointing_needs_the_fused_path_at_run_time():
    net = build_model(TrainConfig(method="rk4", checkpoint_every=4, layers=1, width=3))
    with pytest.raises(ValueError, match="checkpoint_every needs the fused path, which cannot run this model: layer 0"):
        net(torch.rand(8, 2, 1))
    with torch.no_grad():  # no gradient, nothing to store: the per-step path runs
        assert net(torch.rand(8, 2, 1)).shape == (2, 10)


def test_checkpointing_is_refused_for_recorded_traces_with_gradients():
    """record=True runs the per-step path, which stores every step: refused while gradients are on."""
    net = build_model(TrainConfig(checkpoint_every=4, layers=1, width=3))
    with pytest.raises(ValueError, match="checkpoint_every needs the fused path, and record=True"):
        net(torch.rand(8, 2, 1), record=True)
    with torch.no_grad():
        _, traces = net(torch.rand(8, 2, 1), record=True)
    assert traces["x"][0].shape == (8, 2, 3)
