"""The spiking twins: the ALIF layer against snnTorch's Leaky, learnable β, the readouts."""

import math

import pytest
import snntorch as snn
import torch
from torch import nn

from snnspin.config import TrainConfig
from snnspin.models import build_model
from snnspin.nn import ALIF
from snnspin.nn.alif import spike_function


@pytest.mark.parametrize("surrogate", ["atan", "fast_sigmoid"])
def test_alif_without_adaptation_is_snntorch_leaky(surrogate):
    torch.manual_seed(0)
    inputs = torch.randn(30, 4, 6, dtype=torch.float64) * 0.8 + 0.4
    ours = ALIF(beta=0.85, adapt=0.0, surrogate=surrogate).double()
    theirs = snn.Leaky(beta=0.85, threshold=1.0, spike_grad=spike_function(surrogate))
    a, b = inputs.clone().requires_grad_(True), inputs.clone().requires_grad_(True)
    state, mem = None, torch.zeros(4, 6, dtype=torch.float64)
    out_a, out_b = [], []
    for t in range(30):
        z, state = ours(a[t], state)
        spk, mem = theirs(b[t], mem)
        out_a.append(z)
        out_b.append(spk.to(mem.dtype))
        torch.testing.assert_close(state.mem, mem)
    za, zb = torch.stack(out_a), torch.stack(out_b)
    torch.testing.assert_close(za, zb)
    assert 0 < float(za.mean()) < 1  # some spikes, not all
    (za * torch.arange(30.0, dtype=torch.float64).view(30, 1, 1)).sum().backward()
    (zb * torch.arange(30.0, dtype=torch.float64).view(30, 1, 1)).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)  # same surrogate gradients through time


def test_alif_threshold_adapts_by_hand():
    """Constant input 0.6, β = 0.9, ρ = 0.8, b_a = 1.8: mem and threshold step by step (the LSNN's
    normalised trace a ← ρ a + (1 - ρ) z)."""
    layer = ALIF(beta=0.9, rho=0.8, adapt=1.8)
    mem = adapt = spk = 0.0
    state = None
    fired = 0
    for _ in range(12):
        z, state = layer(torch.full((1, 1), 0.6), state)
        mem = 0.9 * mem + 0.6 - spk * (1.0 + 1.8 * adapt)
        adapt = 0.8 * adapt + 0.2 * spk
        spk = float(mem > 1.0 + 1.8 * adapt)
        fired += spk
        assert float(state.mem) == pytest.approx(mem, abs=1e-6) and float(z) == spk
        assert float(state.adapt) == pytest.approx(adapt, abs=1e-6)
    assert 0 < fired < 12


def test_alif_has_the_snntorch_surface():
    net = nn.Sequential(nn.Linear(3, 5), ALIF(init_hidden=True))
    for _ in range(4):
        out = net(torch.ones(2, 3))
    assert out.shape == (2, 5)
    layer = net[1]
    state = layer.reset_mem()
    assert all(float(s.abs().sum()) == 0 for s in state)
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\]"):
        ALIF(beta=1.5)
    with pytest.raises(ValueError, match=r"rho must be a finite number \[0, 1\]"):
        ALIF(rho=2.0)
    with pytest.raises(ValueError, match="surrogate must be one of atan, fast_sigmoid, sigmoid"):
        ALIF(surrogate="relu")


def test_learnable_beta_is_trained_per_neuron():
    model = build_model(TrainConfig(model="alif", learn_beta=True, layers=2, width=5))
    betas = {n: p for n, p in model.named_parameters() if n.endswith("beta")}
    assert sorted(betas) == ["integrator.beta", "neurons.0.beta", "neurons.1.beta"]
    assert betas["neurons.0.beta"].shape == (5,)
    model(torch.rand(20, 3, 1) * 16).sum().backward()
    assert all(p.grad is not None for p in betas.values())


@pytest.mark.parametrize("model", ["lif", "alif"])
def test_mean_readout_is_the_readout_of_the_time_averaged_spikes(model):
    net = build_model(TrainConfig(model=model, spike_readout="mean", layers=2, width=8, gain=2.0), seed=1).double()
    data = torch.rand(20, 3, 1, dtype=torch.float64) * 16
    log_probs, traces = net(data, record=True)
    spikes = traces["spk"][-1]  # [T, B, N] of the last layer
    logits = net.readout(spikes.mean(0))
    torch.testing.assert_close(log_probs, torch.log_softmax(logits, -1))


def test_max_readout_takes_the_integrators_peak():
    config = TrainConfig(model="lif", spike_readout="max", layers=1, width=6, gain=2.0)
    net = build_model(config, seed=2).double()
    data = torch.rand(15, 2, 1, dtype=torch.float64) * 16
    log_probs, traces = net(data, record=True)
    mem, peak = torch.zeros(2, 10, dtype=torch.float64), None
    beta = float(net.integrator.beta)
    for spk in traces["spk"][-1]:
        mem = beta * mem + net.readout(spk)
        peak = mem if peak is None else torch.maximum(peak, mem)
    torch.testing.assert_close(log_probs, torch.log_softmax(peak, -1))


@pytest.mark.parametrize("model", ["lif", "alif"])
def test_readout_tau_gives_the_integrator_its_own_memory(model):
    """The last readout: mem⁺ = β_r mem + W spk with β_r = e^(-dt/readout_tau), not the neurons' β."""
    config = TrainConfig(model=model, layers=1, width=6, gain=2.0, tau=1.0, readout_tau=10.0)
    net = build_model(config, seed=3).double()
    assert float(net.integrator.beta) == pytest.approx(math.exp(-1.0 / 10.0))
    data = torch.rand(12, 2, 1, dtype=torch.float64) * 16
    log_probs, traces = net(data, record=True)
    mem = torch.zeros(2, 10, dtype=torch.float64)
    for spk in traces["spk"][-1]:
        mem = math.exp(-0.1) * mem + net.readout(spk)
    torch.testing.assert_close(log_probs, torch.log_softmax(mem, -1))
    assert float(build_model(config.replace(readout_tau=0.0)).integrator.beta) == pytest.approx(math.exp(-1.0))


@pytest.mark.parametrize("changes, message", [
    ({"learn_beta": True}, "learn_beta applies to the spiking twins"),
    ({"readout_tau": 5.0}, "readout_tau applies to the spiking twins"),
    ({"model": "lif", "readout_tau": -1.0}, "readout_tau must be > 0"),
    ({"model": "ctrnn", "spike_readout": "mean"}, "spike_readout applies to the spiking twins"),
    ({"model": "lif", "adapt_strength": 1.0}, "adapt_strength applies to the alif model only"),
    ({"model": "alif", "adapt_tau": 0.0}, "adapt_tau must be > 0"),
    ({"model": "lif", "surrogate_slope": -1.0}, "surrogate_slope must be > 0"),
    ({"model": "ctrnn", "detach_reset": False}, "detach_reset applies to the spiking twins"),
])
def test_spiking_settings_are_refused_where_they_do_not_apply(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


@pytest.mark.parametrize("model", ["lif", "alif"])
@pytest.mark.parametrize("readout", ["last", "mean", "max"])
@pytest.mark.parametrize("learn_beta, detach_reset", [(False, True), (True, True), (False, False), (True, False)])
def test_the_fast_loop_equals_the_snntorch_modules(model, readout, learn_beta, detach_reset):
    # engine auto / fused: snnspin.spiking_loop; reference: snnTorch's Leaky (or ALIF) step by step.
    # Log-probabilities, final membranes and every gradient agree in float64, with sub-steps,
    # two input channels, 4-bit weights and a readout integrator of its own; with the reset's
    # gradient stopped (snnTorch's way) or not.
    data = torch.randn(20, 5, 2, dtype=torch.float64) * 2
    targets = torch.tensor([0, 3, 1, 9, 3])
    extra = {"adapt_strength": 0.3, "adapt_tau": 7.0} if model == "alif" else {}
    results = []
    for engine in ("reference", "fused"):
        config = TrainConfig(model=model, learn_beta=learn_beta, spike_readout=readout, substeps=2, n_inputs=2,
                             width=7, tau=3.0, gain=1.5, init_scale=3.0, readout_tau=7.0, weight_bits=4,
                             surrogate="fast_sigmoid", surrogate_slope=5.0, engine=engine, detach_reset=detach_reset,
                             **extra)
        net = build_model(config, seed=1).double()
        log_probs = net(data)
        torch.nn.functional.nll_loss(log_probs, targets).backward()
        grads = {name: p.grad for name, p in net.named_parameters() if p.grad is not None}  # mean: no integrator
        results.append((log_probs.detach(), net.final_states, grads))
    (lp_ref, mem_ref, g_ref), (lp, mem, g) = results
    with torch.no_grad():
        _, traces = net(data, record=True)
    for layer in traces["spk"]:  # every layer fires, and not always: resets and thresholds matter
        assert 0.05 < float(layer.mean()) < 0.95
    assert sum(v.abs().sum() for v in g_ref.values()) > 0
    torch.testing.assert_close(lp, lp_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mem, mem_ref, rtol=1e-12, atol=1e-12)
    assert sorted(g) == sorted(g_ref) and (not learn_beta or any("beta" in name for name in g))
    # snnTorch's spikes are float32 whatever the membrane's dtype, so a gradient through a spike is
    # rounded to float32 on its way into the surrogate. Through the reset (detach_reset=False) the
    # modules round that path apart from the spike's other uses, the fast loop their sum: 1e-8 apart.
    # ALIF's spikes keep the membrane's dtype: exact either way.
    tolerance = 1e-12 if detach_reset or model == "alif" else 1e-6
    for name in g_ref:
        torch.testing.assert_close(g[name], g_ref[name], rtol=tolerance, atol=tolerance, msg=name)


def _by_hand(model, detach, steps, drive, k, beta, rho, strength):
    """(membrane, d membrane / d drive) after ``steps`` constant drives of one LIF (ALIF) neuron, in
    forward mode: reset term R(z) = z (sg(z) when ``detach``), fast_sigmoid's s'(x) = 1/(1 + k|x|)²."""
    mem, dmem, a, da, z, dz = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    for _ in range(steps):
        dzr = 0.0 if detach else dz
        level, dlevel = 1.0 + strength * a, strength * da
        mem, dmem = beta * mem + drive - z * level, beta * dmem + 1.0 - (dzr * level + z * dlevel)
        if model == "alif":
            a, da = rho * a + (1 - rho) * z, rho * da + (1 - rho) * dzr
        level, dlevel = 1.0 + strength * a, strength * da
        z, dz = float(mem > level), (dmem - dlevel) / (1 + k * abs(mem - level)) ** 2
    return mem, dmem


@pytest.mark.parametrize("model", ["lif", "alif"])
def test_the_reset_passes_the_gradient_only_when_not_detached(model):
    # One neuron with input weight w driven by ones: the membrane after the last step and its
    # derivative in w, by hand, against snnspin.nn.Leaky / ALIF (which the reference engine runs;
    # the fast loop's gradients equal theirs, test above); the membrane (forward only) under both engines.
    steps, k, rho, w0 = 6, 2.0, math.exp(-1 / 2.0), 0.9
    strength = 0.5 if model == "alif" else 0.0
    extra = {"adapt_strength": strength, "adapt_tau": 2.0} if model == "alif" else {}
    grads = {}
    for detach in (True, False):
        for engine in ("reference", "fused"):
            config = TrainConfig(model=model, width=1, layers=1, d_inter=1.0, d_intra=0.0, tau=3.0, gain=1.0,
                                 surrogate="fast_sigmoid", surrogate_slope=k, detach_reset=detach, engine=engine,
                                 **extra)
            net = build_model(config).double()
            beta = float(net.neurons[0].beta)  # e^(-1/3), as the layer holds it (snnTorch: rounded to float32)
            assert beta == pytest.approx(math.exp(-1 / 3.0), rel=1e-7)
            mem, dmem = _by_hand(model, detach, steps, w0, k, beta, rho, strength)
            with torch.no_grad():
                net.w_ext[0].weight.fill_(w0)
                net.w_ext[0].bias.zero_()
            net(torch.ones(steps, 1, 1, dtype=torch.float64))
            assert float(net.final_states[0, 0, 0]) == pytest.approx(mem, abs=1e-12)
        neuron, w = net.neurons[0], net.w_ext[0].weight
        membrane, state = torch.zeros(1, 1, dtype=torch.float64), None
        for _ in range(steps):
            current = torch.nn.functional.linear(torch.ones(1, 1, dtype=torch.float64), w)
            if model == "alif":
                _, state = neuron(current, state)
                membrane = state.mem
            else:
                _, membrane = neuron(current, membrane)
        (grad,) = torch.autograd.grad(membrane.sum(), w)
        assert float(grad) == pytest.approx(dmem, rel=1e-10 if detach else 1e-7), detach  # float32 spikes
        grads[detach] = dmem
    assert abs(grads[True] - grads[False]) > 0.05  # the neuron fired: the reset's path carries gradient


def test_auto_takes_the_fast_loop_and_reference_the_modules(monkeypatch):
    import snnspin.models as models

    def refuse(*_):
        raise RuntimeError("the fast loop ran")

    monkeypatch.setattr(models, "spiking_sequence", refuse)
    data = torch.rand(6, 2, 1)
    with pytest.raises(RuntimeError, match="the fast loop ran"):
        build_model(TrainConfig(model="lif"))(data)
    build_model(TrainConfig(model="lif", engine="reference"))(data)  # snnTorch's modules: no call
    build_model(TrainConfig(model="alif"))(data, record=True)  # traces come from the modules
    with pytest.raises(RuntimeError, match="the fast loop ran"):
        build_model(TrainConfig(model="alif"))(data)


@pytest.mark.parametrize("change, reason", [
    (lambda n: setattr(n, "reset_mechanism", "zero"), "reset_mechanism changed"),
    (lambda n: setattr(n, "graded_spikes_factor", nn.Parameter(torch.tensor(2.0))), "graded_spikes_factor changed"),
    (lambda n: setattr(n, "threshold", nn.Parameter(torch.tensor(1.0))), "threshold changed"),
    (lambda n: setattr(n, "reset_delay", False), "reset_delay changed"),
])
def test_leaky_settings_the_fast_loop_does_not_compute_go_to_the_modules(change, reason):
    net = build_model(TrainConfig(model="lif", layers=2, width=4))
    change(net.neurons[1])
    assert net.fused_reason() == f"layer 1: the lean loop computes snnTorch Leaky's defaults; {reason}"
    net(torch.rand(5, 2, 1))  # auto: the per-step modules run it
    net.config = net.config.replace(engine="fused")
    with pytest.raises(ValueError, match="engine='fused' is not available: layer 1"):
        net(torch.rand(5, 2, 1))


def test_each_layers_own_surrogate_is_used():
    from snntorch import surrogate

    data = torch.rand(12, 3, 1, dtype=torch.float64) * 4
    grads = []
    for engine in ("reference", "fused"):
        net = build_model(TrainConfig(model="lif", layers=2, width=6, gain=2.0, engine=engine), seed=3).double()
        net.neurons[0].spike_grad = surrogate.fast_sigmoid(slope=1.0)
        net(data).sum().backward()
        grads.append(net.w_int[0].weight.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-12, atol=1e-12)
