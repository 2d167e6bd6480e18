"""Several networks in one fused call: each gets what it gets alone (float64), and training together
is training one after the other."""

import warnings

import pytest
import torch
from torch.nn import functional as F

from snnspin import native, pointwise
from snnspin.config import TrainConfig
from snnspin.device import seed_noise
from snnspin.ensemble import MAX_TOGETHER, log_probs_together, together_reason
from snnspin.fused import ensemble_reason, fused_oscillator_sequences
from snnspin.models import build_model
from snnspin.nn.alif import spike_function
from snnspin.spiking_loop import spiking_sequences
from snnspin.training import evaluate, evaluate_together, load_data, train_seed, train_seeds

KERNELS = [pytest.param(pointwise.TORCH, id="torch-kernels"),
           pytest.param(pointwise.NATIVE, id="native-kernels",
                        marks=pytest.mark.skipif(not native.available(), reason="no C compiler"))]

# per member: what differs between the networks of one call (seed always does)
MEMBERS = [
    [dict(), dict(), dict()],
    [dict(tau=1.0, gain=0.5), dict(tau=3.0, gain=1.2), dict(tau=14.12, gain=0.3)],  # hyperparameters that are tensors
    [dict(substeps=2, delta_t=2.0, mismatch=0.1, chip_seed=k) for k in range(3)],  # chips: per-neuron σ, Q, τ
    [dict(layers=2, readout="x", x_min=1e-4, d_inter=0.5), dict(layers=2, readout="x", x_min=1e-2, d_inter=0.5)],
    [dict(checkpoint_every=5), dict(checkpoint_every=5)],  # recomputed segments
    [dict(n_inputs=3, width=2), dict(n_inputs=3, width=2)],  # signals wider than a layer
    [dict(learn_tau=True), dict(learn_tau=True, tau=3.0)],  # trainable τ per neuron: its gradient too
    [dict(weight_bits=4, input_scale=0.3, readout="x"), dict(weight_bits=4, input_scale=0.3, readout="x")],
    [dict(readout_time="mean"), dict(readout_time="mean", tau=3.0)],  # a readout of every step: its sums too
    [dict(readout_time="mean", checkpoint_every=5, substeps=2, delta_t=2.0)] * 2,
]


def _run(models, batches, together, noise_seed=None):
    """Log-probabilities, final states and every gradient of Σ_m NLL_m, the networks run together or alone."""
    targets = torch.arange(batches[0].shape[1]) % 10
    for m, model in enumerate(models):
        model.zero_grad(set_to_none=True)
        if noise_seed is not None:
            seed_noise(model, noise_seed + m)
    log_probs = log_probs_together(models, batches) if together else [m(b) for m, b in zip(models, batches)]
    sum(F.nll_loss(p, targets) for p in log_probs).backward()
    return ([p.detach() for p in log_probs], [m.final_states.clone() for m in models],
            [{n: None if p.grad is None else p.grad.clone() for n, p in m.named_parameters()} for m in models])


def _networks(model, members, dtype=torch.float64):
    configs = [TrainConfig(model=model, **{"width": 6, "layers": 3, **changes}) for changes in members]
    nets = [build_model(c, seed).to(dtype) for seed, c in enumerate(configs)]
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.rand(12, 5, c.n_inputs or 1, generator=generator) * 16).to(dtype) for c in configs]
    return nets, batches


def _assert_same(a, b, tol=1e-12):
    for x, y in zip(a[0] + a[1], b[0] + b[1]):
        assert torch.allclose(x, y, rtol=tol, atol=tol)
    for grads_a, grads_b in zip(a[2], b[2]):
        assert grads_a.keys() == grads_b.keys()
        for name in grads_a:
            scale = float(grads_a[name].abs().max()) + 1e-30
            assert float((grads_a[name] - grads_b[name]).abs().max()) <= tol * scale, name


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("model", ["spintronic", "ctrnn"])
@pytest.mark.parametrize("members", MEMBERS)
def test_each_network_gets_what_it_gets_alone_float64(model, members, kernels):
    if model == "ctrnn":
        members = [{k: v for k, v in m.items() if k not in ("x_min", "mismatch", "chip_seed")} for m in members]
    nets, batches = _networks(model, members)
    assert together_reason(nets) is None
    with pointwise.using(kernels), warnings.catch_warnings():
        warnings.simplefilter("error")  # no silent fallback to another path
        together = _run(nets, batches, True)
        alone = _run(nets, batches, False)
    assert all(g is not None for grads in together[2] for g in grads.values())  # every parameter got a gradient
    _assert_same(together, alone)


SPIKING_MEMBERS = [
    ("lif", [dict(), dict(), dict()]),
    ("lif", [dict(learn_beta=True, tau=2.0, readout_tau=10.0), dict(learn_beta=True, tau=5.0, readout_tau=30.0)]),
    ("lif", [dict(spike_readout="max", detach_reset=False, gain=2.0), dict(spike_readout="max", detach_reset=False)]),
    ("lif", [dict(spike_readout="mean", substeps=2, surrogate="atan")] * 2),
    ("alif", [dict(adapt_strength=0.2, adapt_tau=50.0), dict(adapt_strength=1.8, adapt_tau=20.0, learn_beta=True)]),
    ("alif", [dict(detach_reset=False, n_inputs=3, width=2)] * 2),
]


@pytest.mark.parametrize("model, members", SPIKING_MEMBERS)
def test_spiking_twins_together_get_what_they_get_alone(model, members):
    """The spiking twins' loop for several networks (spiking_sequences): per step one batched
    product for all; each network's log-probabilities, membranes and gradients as alone (float64)."""
    nets, batches = _networks(model, [{"gain": 4.0, **m} for m in members])  # gain: every layer fires
    for k, net in enumerate(nets):  # thresholds per network (snnTorch's buffer, ALIF's float) set after building
        for neuron in net.neurons:
            neuron.threshold = neuron.threshold * (1.0 + 0.25 * k)
    assert together_reason(nets) is None
    together, alone = _run(nets, batches, True), _run(nets, batches, False)
    assert all(g is not None for grads in together[2] for g in grads.values())
    assert any(float(f.abs().max()) > 1 for f in together[1])  # membranes past the threshold: spikes
    _assert_same(together, alone)
    for a, b in zip(together[2], alone[2]):
        for name in a:
            assert torch.allclose(a[name], b[name], rtol=1e-12, atol=1e-12), name


@pytest.mark.parametrize("kernels", KERNELS)
def test_thermal_noise_draws_are_each_networks_own(kernels):
    nets, batches = _networks("spintronic", [dict(thermal_power=1e-3)] * 3)
    with pointwise.using(kernels):
        together, alone = _run(nets, batches, True, noise_seed=7), _run(nets, batches, False, noise_seed=7)
        quiet = _run(nets, batches, True, noise_seed=8)
    _assert_same(together, alone)
    assert not torch.allclose(together[0][0], quiet[0][0])  # the draws matter


def test_networks_that_cannot_run_together_run_one_after_the_other():
    def reason(*configs):
        return together_reason([build_model(c, seed) for seed, c in enumerate(configs)])

    assert reason(TrainConfig()) == "a single network"
    assert reason(TrainConfig(model="lif"), TrainConfig(model="lif")) is None  # their own loop (spiking_sequences)
    assert reason(TrainConfig(model="lif"), TrainConfig(model="alif")) == "the networks differ in model (lif, alif)"
    assert reason(TrainConfig(model="lif"), TrainConfig(model="lif", spike_readout="max")).startswith(
        "the networks differ in spike_readout")
    lifs = [build_model(TrainConfig(model="lif"), seed) for seed in range(2)]  # called directly: refused
    assert ensemble_reason(lifs) == "LIFNetwork has no call here (only the oscillators and the CTRNN)"
    with pytest.raises(ValueError, match="the fused path cannot run this model: LIFNetwork has no call"):
        fused_oscillator_sequences(lifs, torch.zeros(3, 2, 1, 1))
    changed = [build_model(TrainConfig(model="lif", width=4), seed) for seed in range(2)]
    assert together_reason(changed) is None
    changed[1].neurons[0].spike_grad = spike_function("fast_sigmoid", 25.0)  # set on a module after it was built
    assert together_reason(changed) == "the networks' layers differ in their surrogate spike function or detach_reset"
    changed[1].neurons[0].spike_grad = spike_function("atan", 0.0)  # the default slope: the same function
    assert together_reason(changed) is None
    changed[1].neurons[2].detach_reset = False
    assert together_reason(changed) == "the networks' layers differ in their surrogate spike function or detach_reset"
    assert reason(TrainConfig(model="alif", width=64), TrainConfig(model="alif", width=64)) is None  # no layer-by-layer
    with pytest.raises(ValueError, match="cannot run together in one loop: the networks differ in width"):
        spiking_sequences([build_model(TrainConfig(model="lif", width=w)) for w in (4, 5)], torch.zeros(3, 2, 1, 1))
    with pytest.raises(ValueError, match=r"must be \[T, M = 2, B, F\]"):
        spiking_sequences(lifs, torch.zeros(3, 1, 1))
    assert reason(TrainConfig(), TrainConfig(model="ctrnn")).startswith("the networks are of different kinds")
    assert reason(TrainConfig(), TrainConfig(width=8)) == "the networks differ in width (32, 8)"
    assert reason(TrainConfig(), TrainConfig(substeps=2)).startswith("the networks differ in dt")
    assert reason(TrainConfig(), TrainConfig(thermal_power=1e-3)) == "the networks differ in thermal noise (False, True)"
    assert reason(TrainConfig(engine="reference"), TrainConfig()) == "engine='reference' runs the per-step path"
    assert reason(TrainConfig(width=64), TrainConfig(width=64)).startswith("layers of 48 neurons or more")
    assert reason(*[TrainConfig()] * (MAX_TOGETHER + 1)) == f"more than {MAX_TOGETHER} networks"
    # and what falls back still gives each network its own result
    nets = [build_model(TrainConfig(width=4), 0), build_model(TrainConfig(width=5), 1)]
    batches = [torch.rand(8, 3, 1) * 16, torch.rand(8, 3, 1) * 16]
    for net, p, b in zip(nets, log_probs_together(nets, batches), batches):
        assert torch.equal(p, net(b))


def test_batches_of_different_shapes_run_one_after_the_other():
    nets, _ = _networks("spintronic", [dict(), dict()], torch.float32)
    batches = [torch.rand(12, 5, 1) * 16, torch.rand(12, 4, 1) * 16]
    for net, p, b in zip(nets, log_probs_together(nets, batches), batches):
        assert torch.equal(p, net(b))
    with pytest.raises(ValueError, match="2 networks but 1 batches"):
        log_probs_together(nets, batches[:1])


def test_evaluating_noisy_networks_together_gives_each_its_own_draws():
    nets, _ = _networks("spintronic", [dict(thermal_power=1e-3)] * 3, torch.float64)
    data, targets = torch.rand(12, 7, 1, dtype=torch.float64) * 16, torch.arange(7)
    for net in nets:
        seed_noise(net, 3)
    together = evaluate_together(nets, data, targets, batch_size=6)
    for net, (loss, acc) in zip(nets, together):
        seed_noise(net, 3)
        assert (loss, acc) == pytest.approx(evaluate(net, data, targets, batch_size=6), rel=1e-12)


def test_the_fused_ensemble_functions_refuse_data_for_another_number_of_networks():
    from snnspin.fused import fused_ctrnn_sequences, fused_oscillator_sequences

    for model, run in (("ctrnn", fused_ctrnn_sequences), ("spintronic", fused_oscillator_sequences)):
        nets, _ = _networks(model, [dict()] * 3, torch.float32)
        with pytest.raises(ValueError, match=r"data for 3 network\(s\) must be \[T, M = 3, B, F\], got shape \(12, 1, 5, 1\)"):
            run(nets, torch.rand(12, 1, 5, 1))


def test_evaluating_together_is_evaluating_each():
    nets, _ = _networks("spintronic", [dict(), dict(), dict()], torch.float64)
    data, targets = torch.rand(12, 7, 1, dtype=torch.float64) * 16, torch.arange(7)
    for net, (loss, acc, health) in zip(nets, evaluate_together(nets, data, targets, batch_size=6, health=True)):
        loss_alone, acc_alone, health_alone = evaluate(net, data, targets, health=True)
        assert loss == pytest.approx(loss_alone, rel=1e-12) and acc == acc_alone
        assert health["dead"] == pytest.approx(health_alone["dead"], abs=1e-6)  # float32 fractions, chunks of 2 series


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _data(config):
    return tuple((x[:, :240].double(), y[:240]) for x, y in load_data(config))


@pytest.mark.parametrize("changes", [dict(), dict(model="ctrnn"), dict(mismatch=0.05, chip_draw="batch")])
def test_training_together_is_training_one_after_the_other(float64, changes, tmp_path):
    config = TrainConfig(width=6, epochs=2, batch_size=100, **changes)
    data = _data(config)
    together = train_seeds(config, [0, 1, 2], [tmp_path / f"s{k}" for k in range(3)], progress=False, data=data)
    for seed in (0, 1, 2):
        model, history = train_seed(config, seed, progress=False, data=data)
        model_t, history_t = together[seed]
        for p, q in zip(model.parameters(), model_t.parameters()):
            assert torch.allclose(p, q, rtol=1e-10, atol=1e-12)
        for r, s in zip(history, history_t):
            assert (r.train_loss, r.train_acc, r.eval_acc, r.skipped) == pytest.approx(
                (s.train_loss, s.train_acc, s.eval_acc, s.skipped), rel=1e-9)
        assert (tmp_path / f"s{seed}" / "weights.pt").exists()


def test_seeds_resumed_at_different_epochs_are_brought_level(float64, tmp_path):
    config = TrainConfig(width=6, epochs=3, batch_size=100)
    data = _data(config)
    folders = [tmp_path / "s0", tmp_path / "s1"]
    train_seed(config.replace(epochs=2), 0, folders[0], progress=False, data=data)  # an interrupted run
    train_seed(config.replace(epochs=1), 1, folders[1], progress=False, data=data)
    seen = []
    resumed = train_seeds(config, [0, 1], folders, resume=True, progress=False, data=data,
                          on_epoch=lambda seed, record: seen.append((seed, record.epoch)))
    assert seen == [(1, 2), (0, 3), (1, 3)]  # the one behind first, then both together
    for seed in (0, 1):
        _, history = train_seed(config, seed, progress=False, data=data)
        assert [r.train_loss for r in resumed[seed][1]] == pytest.approx([r.train_loss for r in history], rel=1e-9)


def test_train_seeds_refuses_repeated_seeds_or_missing_folders():
    with pytest.raises(ValueError, match="distinct seeds and one folder per seed"):
        train_seeds(TrainConfig(width=2, epochs=1), [0, 0], progress=False)
    with pytest.raises(ValueError, match="distinct seeds and one folder per seed"):
        train_seeds(TrainConfig(width=2, epochs=1), [0, 1], [None], progress=False)


@pytest.mark.skipif(not native.available(), reason="no C compiler")
def test_native_kernels_check_the_networks_depth():
    rows = torch.zeros(6, 2, 4)
    wide = torch.zeros(6, 2, 8)
    neuron = torch.zeros(6, 4)
    arguments = dict(syn=rows, x=rows, step_gain=neuron, decay=neuron, x_out=rows.clone(), y_out=rows.clone(),
                     z_next=wide)
    with pytest.raises(ValueError, match="depth 4 does not divide the 6 layers"):
        native.call("ctrnn_forward", 0, 1, True, 4, **arguments)
    with pytest.raises(ValueError, match=r"active layers \[0, 2\] outside \[0, 1\]"):
        native.call("ctrnn_forward", 0, 2, True, 2, **arguments)
    native.call("ctrnn_forward", 0, 1, True, 2, **arguments)  # three networks of two layers


def _nan_for(seed, monkeypatch):
    """Seed ``seed``'s network starts with a NaN weight: its first loss is not finite."""
    import snnspin.training

    real = snnspin.training.build_model

    def build(config, s=0):
        model = real(config, s)
        if s == seed:
            with torch.no_grad():
                model.readout.weight[0, 0] = float("nan")
        return model

    monkeypatch.setattr(snnspin.training, "build_model", build)


def test_a_diverging_seed_drops_out_and_the_others_finish(float64, monkeypatch, tmp_path):
    from snnspin.training import SeedsFailed

    config = TrainConfig(width=6, epochs=2, batch_size=100)
    data = _data(config)
    alone = {seed: train_seed(config, seed, progress=False, data=data)[1] for seed in (0, 2)}
    _nan_for(1, monkeypatch)
    with pytest.raises(SeedsFailed, match=r"seed 1: the loss became nan at epoch 1.*\(seeds 1 diverged; seeds 0, 2 "
                                          r"finished\)") as failed:
        train_seeds(config, [0, 1, 2], [tmp_path / f"s{k}" for k in range(3)], progress=False, data=data)
    assert sorted(failed.value.finished) == [0, 2] and list(failed.value.errors) == [1]
    for seed in (0, 2):
        history = failed.value.finished[seed][1]
        assert [r.train_loss for r in history] == pytest.approx([r.train_loss for r in alone[seed]], rel=1e-9)
        assert (tmp_path / f"s{seed}" / "weights.pt").exists()
    assert not (tmp_path / "s1" / "checkpoint.pt").exists()
    with pytest.raises(FloatingPointError, match=r"^spintronic seed 1: the loss became nan at epoch 1; the weights "
                                                 r"are no longer finite \(lower lr0 or clip\)$"):
        train_seed(config, 1, progress=False, data=data)  # alone: the message as before


def test_every_finished_epoch_is_checkpointed_before_a_callback_raises(float64, tmp_path):
    config = TrainConfig(width=6, epochs=2, batch_size=100)

    def stop(seed, record):
        raise KeyboardInterrupt

    folders = [tmp_path / f"s{k}" for k in range(3)]
    with pytest.raises(KeyboardInterrupt):
        train_seeds(config, [0, 1, 2], folders, progress=False, data=_data(config), on_epoch=stop)
    assert all((folder / "checkpoint.pt").exists() for folder in folders)
